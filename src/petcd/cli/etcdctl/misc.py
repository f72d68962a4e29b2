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


Words = tuple[list[str], dict[str, list[str]], list[str]]  # commands, subcommands, flags


def _words() -> Words:
    from petcd.cli.etcdctl import COMMANDS, GLOBAL_FLAGS

    top = sorted(COMMANDS)
    subs = {name: sorted(c.subcommands) for name, c in COMMANDS.items() if c.subcommands}
    flags = sorted("--" + f.name for f in GLOBAL_FLAGS if not f.hidden)
    return top, subs, flags


def _bash(prog: str, words: Words) -> str:
    top, subs, flags = words
    cases = "".join(f'        {name}) opts="{" ".join(s)}" ;;\n' for name, s in subs.items())
    return (
        f"# bash completion for {prog}\n"
        f"_{prog}() {{\n"
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
        f"complete -o default -F _{prog} {prog}\n"
    )


def _zsh(prog: str, words: Words) -> str:
    return f"#compdef {prog}\nautoload -U bashcompinit && bashcompinit\n" + _bash(prog, words)


def _fish(prog: str, words: Words) -> str:
    top, subs, flags = words
    lines = [f"# fish completion for {prog}"]
    lines += [f"complete -c {prog} -n __fish_use_subcommand -a {name}" for name in top]
    for name, s in subs.items():
        lines += [f"complete -c {prog} -n '__fish_seen_subcommand_from {name}' -a {sub}" for sub in s]
    lines += [f"complete -c {prog} -l {f[2:]}" for f in flags]
    return "\n".join(lines) + "\n"


def _powershell(prog: str, words: Words) -> str:
    top, _, flags = words
    listed = ", ".join(f"'{w}'" for w in [*top, *flags])
    return (
        f"Register-ArgumentCompleter -Native -CommandName '{prog}' -ScriptBlock {{\n"
        "    param($wordToComplete, $commandAst, $cursorPosition)\n"
        f'    @({listed}) | Where-Object {{ $_ -like "$wordToComplete*" }} |\n'
        "        ForEach-Object {\n"
        "            [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)\n"
        "        }\n"
        "}\n"
    )


SHELLS = {"bash": _bash, "zsh": _zsh, "fish": _fish, "powershell": _powershell}


def completion_script(prog: str, args: list[str], words: Words) -> str:
    """The script for ``<prog> completion <shell>``, after cobra's argument checks (ExactArgs(1),
    then OnlyValidArgs), which are usage errors."""
    if len(args) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(args)}")
    if args[0] not in SHELLS:
        raise UsageError(f'invalid argument {go_quote(args[0])} for "{prog} completion"')
    return SHELLS[args[0]](prog, words)


def completion(ctx: Context) -> int:
    ctx.printer.write(completion_script("etcdctl", list(ctx.args), _words()))
    return 0
