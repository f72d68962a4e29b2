"""version and completion: the commands that need no server."""

from __future__ import annotations

from petcd.cli.etcdctl.context import Context
from petcd.cli.etcdctl.flags import UsageError
from petcd.cli.etcdctl.gofmt import go_quote


def version(ctx: Context) -> int:
    from petcd.cli.etcdctl import API_VERSION, VERSION

    ctx.printer.line(f"etcdctl version: {VERSION}")
    ctx.printer.line(f"API version: {API_VERSION}")
    return 0


def _words() -> tuple[list[str], dict[str, list[str]], list[str]]:
    from petcd.cli.etcdctl import COMMANDS, GLOBAL_FLAGS

    top = sorted(COMMANDS)
    subs = {name: sorted(c.subcommands) for name, c in COMMANDS.items() if c.subcommands}
    flags = sorted("--" + f.name for f in GLOBAL_FLAGS)
    return top, subs, flags


def _bash() -> str:
    top, subs, flags = _words()
    cases = "".join(f'        {name}) opts="{" ".join(s)}" ;;\n' for name, s in subs.items())
    return (
        "# bash completion for etcdctl\n"
        "_etcdctl() {\n"
        "    local cur prev words cword opts\n"
        '    cur="${COMP_WORDS[COMP_CWORD]}"\n'
        '    if [[ "$cur" == -* ]]; then\n'
        f'        COMPREPLY=($(compgen -W "{" ".join(flags)}" -- "$cur")); return\n'
        "    fi\n"
        "    if [[ $COMP_CWORD -eq 1 ]]; then\n"
        f'        COMPREPLY=($(compgen -W "{" ".join(top)}" -- "$cur")); return\n'
        "    fi\n"
        '    case "${COMP_WORDS[1]}" in\n'
        f"{cases}"
        '        *) opts="" ;;\n'
        "    esac\n"
        "    if [[ $COMP_CWORD -eq 2 ]]; then\n"
        '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))\n'
        "    fi\n"
        "}\n"
        "complete -o default -F _etcdctl etcdctl\n"
    )


def _zsh() -> str:
    return "#compdef etcdctl\nautoload -U bashcompinit && bashcompinit\n" + _bash()


def _fish() -> str:
    top, subs, flags = _words()
    lines = ["# fish completion for etcdctl"]
    lines += [f"complete -c etcdctl -n __fish_use_subcommand -a {name}" for name in top]
    for name, s in subs.items():
        lines += [f"complete -c etcdctl -n '__fish_seen_subcommand_from {name}' -a {sub}" for sub in s]
    lines += [f"complete -c etcdctl -l {f[2:]}" for f in flags]
    return "\n".join(lines) + "\n"


def _powershell() -> str:
    top, _, flags = _words()
    words = ", ".join(f"'{w}'" for w in [*top, *flags])
    return (
        "Register-ArgumentCompleter -Native -CommandName 'etcdctl' -ScriptBlock {\n"
        "    param($wordToComplete, $commandAst, $cursorPosition)\n"
        f'    @({words}) | Where-Object {{ $_ -like "$wordToComplete*" }} |\n'
        "        ForEach-Object {\n"
        "            [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)\n"
        "        }\n"
        "}\n"
    )


def completion(ctx: Context) -> int:
    shells = {"bash": _bash, "zsh": _zsh, "fish": _fish, "powershell": _powershell}
    # cobra's argument checks (ExactArgs(1), then OnlyValidArgs): usage errors, exit 1
    if len(ctx.args) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(ctx.args)}")
    if ctx.args[0] not in shells:
        raise UsageError(f'invalid argument {go_quote(ctx.args[0])} for "etcdctl completion"')
    ctx.printer.write(shells[ctx.args[0]]())
    return 0
