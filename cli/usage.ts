// usage: the help texts of every fanrecall command, in one place so `--help` and the
// README stay in step. Owns text only; no fds, no side effects.

export interface CommandHelp {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly built: boolean;
}

export const COMMANDS: readonly CommandHelp[] = [
  {
    name: "start",
    summary: "run everything in the foreground (listener, recall service, embedded S3 when none is configured)",
    usage: "fanrecall start --watch DIR [--watch DIR ...] [--state-dir DIR]",
    built: true,
  },
  {
    name: "listener",
    summary: "run the root fanotify listener alone (for systemd and Kubernetes)",
    usage: "fanrecall listener [--config FILE]",
    built: true,
  },
  {
    name: "recall-service",
    summary: "run the unprivileged recall service alone (for systemd and Kubernetes)",
    usage: "fanrecall recall-service [--config FILE]",
    built: true,
  },
  {
    name: "holder",
    summary: "keep the listener's fanotify group alive across listener crashes and upgrades",
    usage: "fanrecall holder [--socket PATH]",
    built: true,
  },
  { name: "archive", summary: "copy files to the object store", usage: "fanrecall archive PATH...", built: true },
  {
    name: "release",
    summary: "free the local blocks of archived files (archives first when needed)",
    usage: "fanrecall release PATH...",
    built: true,
  },
  { name: "restore", summary: "recall whole files ahead of use", usage: "fanrecall restore PATH...", built: true },
  {
    name: "status",
    summary: "show the state of files (resident, archived, released, partial, dirty, lost)",
    usage: "fanrecall status [--json] PATH...",
    built: true,
  },
  {
    name: "reconcile",
    summary:
      "write a snapshot of a watched directory's namespace to the store; delete objects unreferenced past --retain",
    usage: "fanrecall reconcile [--dry-run] [--json] [--retain DURATION] DIR",
    built: true,
  },
  {
    name: "rebuild",
    summary: "recreate a lost filesystem's files as released stubs from the namespace in the store",
    usage: "fanrecall rebuild [--namespace NAME] [--dry-run] [--json] DIR",
    built: true,
  },
  {
    name: "undelete",
    summary: "bring back a deleted or replaced file as a released stub while its archived copy is kept",
    usage: "fanrecall undelete [--as-of TIME] [--to PATH] PATH...",
    built: true,
  },
  {
    name: "mesh",
    summary: "status, restore or archive files through a recall service's mesh admin API (TLS)",
    usage: "fanrecall mesh status|restore|archive --address HOST:PORT --ca FILE PATH...",
    built: true,
  },
];

export function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}${c.built ? "" : " [not built yet]"}`);
  return [
    "fanrecall: a hierarchical storage manager for Linux on fanotify pre-content events",
    "",
    "Usage: fanrecall COMMAND [OPTIONS]",
    "",
    "Commands:",
    ...lines,
    "",
    "Run 'fanrecall COMMAND --help' for the options of one command.",
    "",
  ].join("\n");
}

export function commandUsage(name: string): string | undefined {
  const c = COMMANDS.find((x) => x.name === name);
  if (!c) return undefined;
  return `Usage: ${c.usage}\n\n${c.summary}${c.built ? "" : "\n\nThis command is not built yet."}\n`;
}
