# deploy/options.sh: the command-line parsing deploy/deploy.sh and deploy/systemd/install.sh
# share. Sourced, never run. A script defines usage(), declares its options in two
# associative arrays and calls parse_options "$@":
#   VALUE_OPTIONS[--name]=var       `--name V` and `--name=V` set $var to V (an empty or
#                                   missing V is refused)
#   FLAG_OPTIONS[--name]=var=value  `--name` sets $var to value
# --help and -h print usage() and exit 0; any other word is refused.
#
# Owns: die() (the script's name, the message, exit 1) and that loop. Holds no state of its
# own and runs nothing.

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

parse_options() {
  # Underscored so that no option's variable can be one of these locals.
  local _name _flag _value
  while (($#)); do
    _name="${1%%=*}"
    if [[ $1 == --help || $1 == -h ]]; then
      usage
      exit 0
    elif [[ -n $1 && -n ${FLAG_OPTIONS["$1"]:-} ]]; then
      _flag="${FLAG_OPTIONS["$1"]}"
      printf -v "${_flag%%=*}" '%s' "${_flag#*=}"
    elif [[ -n $_name && -n ${VALUE_OPTIONS["$_name"]:-} ]]; then
      if [[ $1 == *=* ]]; then
        _value="${1#*=}"
      else
        _value="${2:-}"
        if (($# > 1)); then shift; fi
      fi
      [[ -n $_value ]] || die "$_name needs a value"
      printf -v "${VALUE_OPTIONS["$_name"]}" '%s' "$_value"
    else
      die "unknown option '$1' (see --help)"
    fi
    shift
  done
}
