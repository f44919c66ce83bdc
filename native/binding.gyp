{
  "targets": [
    {
      "target_name": "fanrecall_native",
      "sources": [
        "src/addon.cc",
        "src/fanotify.cc",
        "src/fdpass.cc",
        "src/fileops.cc",
        "src/poller.cc",
        "src/views.cc",
        "src/process.cc",
        "src/as-user.cc"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=9"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", "-fvisibility=hidden"]
    }
  ]
}
