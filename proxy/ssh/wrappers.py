"""What a program does with its argv: wrappers looked through, code handed to interpreters, files written."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "HARMLESS_WRITE_TARGETS",
    "Effects",
    "Invocation",
    "Script",
    "Word",
    "program_effects",
    "risky_variable",
]

# Output targets that are not files: writing there changes nothing on disk.
HARMLESS_WRITE_TARGETS: frozenset[str] = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2"}
)


@dataclass(frozen=True, slots=True)
class Word:
    """One argv word: its value with quoting resolved; parts only known at run time are kept as written."""

    text: str
    raw: str
    known: bool = True  # the whole value is fixed before the command runs
    may_vanish: bool = False  # made only of unquoted expansions: may expand to no word at all


@dataclass(frozen=True, slots=True)
class Invocation:
    """A command about to run: its argv, and what the caller adds to it at run time."""

    argv: tuple[Word, ...]
    extra_args: bool = False  # more arguments are appended at run time (xargs)


@dataclass(frozen=True, slots=True)
class Script:
    """Shell code a program hands to a shell: parsed in turn by the analyser."""

    text: str
    known: bool  # False when parts of the text only exist at run time
    origin: str  # for people: "bash -c", "eval", "watch"


@dataclass(slots=True)
class Effects:
    """Everything one program does beyond being itself."""

    invocations: list[Invocation] = field(default_factory=list)  # wrapped commands, analysed in turn
    scripts: list[Script] = field(default_factory=list)
    stdin_shell: str | None = None  # a shell that reads its commands from stdin (named for the reason text)
    opaque: list[str] = field(default_factory=list)
    file_writes: list[str] = field(default_factory=list)


# -- variables whose value changes which program runs or injects code into it ------------------------------

_RISKY_VARIABLES = frozenset(
    {
        "PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "GCONV_PATH",
        "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PERL5OPT", "PERL5LIB", "PERLLIB",
        "PERL5DB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "PAGER", "MANPAGER", "SYSTEMD_PAGER",
        "SYSTEMD_PAGERSECURE", "SYSTEMD_EDITOR", "LESSOPEN", "LESSCLOSE", "EDITOR", "VISUAL", "SUDO_ASKPASS",
        "SSH_ASKPASS", "BROWSER", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    }
)  # fmt: skip
_RISKY_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "GIT_")


def risky_variable(name: str) -> bool:
    """Whether setting `name` can change which program runs or inject code into one (PATH, LD_PRELOAD...)."""
    return name in _RISKY_VARIABLES or name.startswith(_RISKY_PREFIXES)


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SIMPLE_SUBSCRIPT = re.compile(r"\s*(?:[0-9]+|@|\*)\s*")
_NAME_OPERAND = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]*)\])?(?:\+?=|$)", re.DOTALL)


def _name_problem(word: Word, who: str) -> str | None:
    """Why a variable name handed to a builtin is unsafe, if it is: bash evaluates array subscripts."""
    # An unknown value after a literal `NAME=` is fine; an unknown name is not.
    match = _NAME_OPERAND.match(word.text if word.known else word.raw)
    if match is None:
        return None if word.known else f"{who}: variable name {word.raw} is not known statically"
    name, subscript = match.group(1), match.group(2)
    if subscript is not None and not _SIMPLE_SUBSCRIPT.fullmatch(subscript):
        return f"{who}: array subscript in {word.raw} is evaluated as arithmetic, which can run commands"
    if risky_variable(name):
        return f"{who}: sets {name}, which changes what programs run"
    return None


# -- option parsing ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OptionSpec:
    values: frozenset[str]  # take a value: attached ("-uroot", "--user=root") or the next word
    flags: frozenset[str]
    optional: frozenset[str]  # take a value only when attached ("-i{}", "--replace={}")

    @property
    def long_names(self) -> tuple[str, ...]:
        return tuple(o for o in (*self.values, *self.flags, *self.optional) if o.startswith("--"))


def _spec(values: str = "", flags: str = "", optional: str = "") -> _OptionSpec:
    return _OptionSpec(frozenset(values.split()), frozenset(flags.split()), frozenset(optional.split()))


@dataclass(slots=True)
class _Parsed:
    options: list[tuple[str, Word | None]]
    rest: int  # index of the first operand
    unknown: list[str]  # options not in the spec, or words that cannot be read statically
    operands: list[Word] = field(default_factory=list)  # filled by a permuting parse only

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.options)

    def values(self, *names: str) -> list[Word]:
        return [value for name, value in self.options if name in names and value is not None]


def _resolve_long(spec: _OptionSpec, name: str) -> str | None:
    """GNU getopt_long accepts any unambiguous prefix of a long option."""
    if name in spec.values or name in spec.flags or name in spec.optional:
        return name
    matches = [candidate for candidate in spec.long_names if candidate.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def _parse_options(argv: Sequence[Word], start: int, spec: _OptionSpec, *, permute: bool = False) -> _Parsed:
    """getopt-style parsing; stops at the first operand unless `permute` (then `rest` is len(argv))."""
    parsed = _Parsed([], len(argv), [])
    operands: list[int] = []
    index = start
    while index < len(argv):
        word = argv[index]
        text = word.text
        if not word.known:
            # Could be an option, an operand or nothing at all. Read as the first operand, it stays in
            # view: as a program name it is opaque, and if it can vanish the next word is analysed too.
            parsed.unknown.append(word.raw)
            if not permute:
                break
            operands.append(index)
            index += 1
            continue
        if text == "--":
            index += 1
            break
        if not text.startswith("-") or text == "-":
            if not permute:
                break
            operands.append(index)
            index += 1
            continue
        index += 1
        if text.startswith("--"):
            name, equals, value = text.partition("=")
            resolved = _resolve_long(spec, name)
            if resolved is None:
                parsed.unknown.append(text)
                parsed.options.append((name, None))
            elif resolved in spec.values and not equals:
                parsed.options.append((resolved, argv[index] if index < len(argv) else None))
                index += 1
            elif equals:
                parsed.options.append((resolved, Word(value, value)))
            else:
                parsed.options.append((resolved, None))
            continue
        position = 1
        while position < len(text):
            option = "-" + text[position]
            position += 1
            attached = text[position:]
            if option in spec.values:
                if attached:
                    parsed.options.append((option, Word(attached, attached)))
                elif index < len(argv):
                    parsed.options.append((option, argv[index]))
                    index += 1
                else:
                    parsed.options.append((option, None))
                break
            if option in spec.optional:
                parsed.options.append((option, Word(attached, attached) if attached else None))
                break
            if option not in spec.flags:
                parsed.unknown.append(option)
            parsed.options.append((option, None))
    if permute:
        # Operands met between options, then everything after "--".
        parsed.operands = [argv[i] for i in operands] + list(argv[index:])
        parsed.rest = len(argv)
    else:
        parsed.rest = index
    return parsed


# -- helpers shared by the handlers -----------------------------------------------------------------------


def _name(argv: Sequence[Word]) -> str:
    return posixpath.basename(argv[0].text)


def _unknown_options(effects: Effects, who: str, parsed: _Parsed) -> None:
    if parsed.unknown:
        shown = ", ".join(parsed.unknown[:3])
        effects.opaque.append(f"{who}: cannot tell where the command starts (unknown option {shown})")


def _run_rest(effects: Effects, invocation: Invocation, index: int, who: str) -> None:
    """The words from `index` on are the wrapped command."""
    argv = invocation.argv
    if index < len(argv):
        effects.invocations.append(Invocation(argv[index:], invocation.extra_args))
    elif invocation.extra_args:
        effects.opaque.append(f"{who}: the command comes from input read at run time")


def _write_target(effects: Effects, who: str, target: Word | None) -> None:
    if target is None or target.text in HARMLESS_WRITE_TARGETS:
        return
    effects.file_writes.append(f"{who} writes to {target.text}")


def _wrapper(spec: _OptionSpec, *, operands_before_command: int = 0) -> Callable[[Invocation], Effects]:
    """A wrapper shaped `prog [options] [operand...] command [args]` (nohup, setsid, stdbuf, timeout...)."""

    def handle(invocation: Invocation) -> Effects:
        effects = Effects()
        who = _name(invocation.argv)
        parsed = _parse_options(invocation.argv, 1, spec)
        _unknown_options(effects, who, parsed)
        _run_rest(effects, invocation, parsed.rest + operands_before_command, who)
        return effects

    return handle


# -- privilege and environment wrappers ---------------------------------------------------------------------

_SUDO = _spec(
    values="-a -C -D -g -p -R -r -T -t -U -u --close-from --chdir --group --host --prompt --chroot --role "
    "--type --command-timeout --other-user --user",
    flags="-A -B -b -E -e -H -i -K -k -l -N -n -P -S -s -V -v --askpass --background --bell --edit --help "
    "--set-home --login --remove-timestamp --reset-timestamp --list --non-interactive --preserve-groups "
    "--stdin --shell --version --validate",
    optional="-h --preserve-env",
)


def _skip_assignments(effects: Effects, argv: Sequence[Word], index: int, who: str) -> int:
    """`NAME=VALUE` words before the command (env, sudo): skipped, with a check on what they set."""
    while index < len(argv):
        word = argv[index]
        if not word.known:
            effects.opaque.append(
                f"{who}: {word.raw} is not known statically (an assignment or the command?)"
            )
        elif _ASSIGNMENT.match(word.text):
            name = word.text.partition("=")[0]
            if risky_variable(name):
                effects.opaque.append(f"{who}: sets {name}, which changes what programs run")
        else:
            return index
        index += 1
    return index


def _sudo(invocation: Invocation) -> Effects:
    effects = Effects()
    who = _name(invocation.argv)
    parsed = _parse_options(invocation.argv, 1, _SUDO)
    _unknown_options(effects, who, parsed)
    if parsed.has("-e", "--edit"):
        files = ", ".join(word.text for word in invocation.argv[parsed.rest :]) or "files"
        effects.file_writes.append(f"{who} -e edits {files}")
        return effects
    index = _skip_assignments(effects, invocation.argv, parsed.rest, who)
    if index >= len(invocation.argv) and parsed.has("-s", "--shell", "-i", "--login"):
        effects.stdin_shell = f"{who} -s"
        return effects
    _run_rest(effects, invocation, index, who)
    return effects


def _sudoedit(invocation: Invocation) -> Effects:
    files = ", ".join(word.text for word in invocation.argv[1:] if not word.text.startswith("-")) or "files"
    return Effects(file_writes=[f"sudoedit edits {files}"])


_DOAS = _spec(values="-a -C -u", flags="-L -n -s")


def _doas(invocation: Invocation) -> Effects:
    effects = Effects()
    parsed = _parse_options(invocation.argv, 1, _DOAS)
    _unknown_options(effects, "doas", parsed)
    if parsed.rest >= len(invocation.argv) and parsed.has("-s"):
        effects.stdin_shell = "doas -s"
        return effects
    _run_rest(effects, invocation, parsed.rest, "doas")
    return effects


_ENV = _spec(
    values="-u -C -S --unset --chdir --split-string",
    flags="-i -0 -v --ignore-environment --null --debug --list-signal-handling --help --version",
    optional="--block-signal --default-signal --ignore-signal",
)


def _env(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    start = 1
    while start < len(argv) and argv[start].known and argv[start].text == "-":  # "-" is an old spelling of -i
        start += 1
    parsed = _parse_options(argv, start, _ENV)
    _unknown_options(effects, "env", parsed)
    index = _skip_assignments(effects, argv, parsed.rest, "env")
    split = parsed.values("-S", "--split-string")
    if split:
        # env -S splits one string into the command and its arguments; read it as shell words.
        text = " ".join([split[-1].text, *(word.text for word in argv[index:])])
        effects.scripts.append(Script(text, all(w.known for w in split), "env -S"))
        effects.opaque.append("env -S splits a string into a command at run time")
        return effects
    _run_rest(effects, invocation, index, "env")
    return effects


def _su(invocation: Invocation) -> Effects:
    """su / runuser: `-c STRING` is shell code; `-s PROGRAM` runs any program as the shell."""
    argv = invocation.argv
    who = _name(argv)
    effects = Effects()
    spec = _spec(
        values="-c -g -G -s -w -u --command --session-command --group --supp-group --shell "
        "--whitelist-environment --user",
        flags="-f -l -m -p -P -h -V --fast --login --preserve-environment --pty --help --version",
    )
    parsed = _parse_options(argv, 1, spec, permute=True)
    _unknown_options(effects, who, parsed)
    operands = [word for word in parsed.operands if word.text != "-"]
    if who == "runuser" and parsed.has("-u", "--user"):
        # runuser -u USER [--] COMMAND [ARGS]: the command runs directly, no shell.
        if operands:
            effects.invocations.append(Invocation(tuple(operands), invocation.extra_args))
        return effects
    shells = parsed.values("-s", "--shell")
    shell = shells[-1] if shells else Word("sh", "sh")
    commands = parsed.values("-c", "--command", "--session-command")
    shell_args = operands[1:]  # after the user name, the rest goes to the shell
    if commands:
        effects.invocations.append(Invocation((shell, Word("-c", "-c"), commands[-1], *shell_args)))
    else:
        effects.invocations.append(Invocation((shell, *shell_args), invocation.extra_args))
    return effects


# -- process-control wrappers ----------------------------------------------------------------------------

_NICE = _spec(values="-n --adjustment", flags="--help --version")
_NICE_NUMBER = re.compile(r"--?[0-9]+")


def _nice(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    start = 1
    if start < len(argv) and argv[start].known and _NICE_NUMBER.fullmatch(argv[start].text):
        start += 1  # the old `nice -10 command` form
    parsed = _parse_options(argv, start, _NICE)
    _unknown_options(effects, "nice", parsed)
    _run_rest(effects, invocation, parsed.rest, "nice")
    return effects


def _no_command_when(
    spec: _OptionSpec, pid_options: tuple[str, ...], operands_before: int = 0
) -> Callable[[Invocation], Effects]:
    """A wrapper that runs a command unless an option makes it act on existing processes (ionice -p)."""

    def handle(invocation: Invocation) -> Effects:
        effects = Effects()
        who = _name(invocation.argv)
        parsed = _parse_options(invocation.argv, 1, spec)
        _unknown_options(effects, who, parsed)
        if parsed.has(*pid_options):
            return effects
        _run_rest(effects, invocation, parsed.rest + operands_before, who)
        return effects

    return handle


def _shell_when_empty(spec: _OptionSpec, operands_before: int = 0) -> Callable[[Invocation], Effects]:
    """chroot, nsenter, unshare: without a command they start the user's shell on stdin."""

    def handle(invocation: Invocation) -> Effects:
        effects = Effects()
        who = _name(invocation.argv)
        parsed = _parse_options(invocation.argv, 1, spec)
        _unknown_options(effects, who, parsed)
        index = parsed.rest + operands_before
        if index >= len(invocation.argv) and not invocation.extra_args:
            effects.stdin_shell = who
            return effects
        _run_rest(effects, invocation, index, who)
        return effects

    return handle


_TIME = _spec(
    values="-o -f --output --format",
    flags="-a -p -q -v -V --append --portability --quiet --verbose --version --help",
)


def _time(invocation: Invocation) -> Effects:
    """The bash keyword (`time [-p] [!] [NAME=VALUE]... command`) and GNU /usr/bin/time alike."""
    effects = Effects()
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _TIME)
    _unknown_options(effects, "time", parsed)
    for target in parsed.values("-o", "--output"):
        _write_target(effects, "time -o", target)
    index = parsed.rest
    if index < len(argv) and argv[index].known and argv[index].text == "!":
        index += 1  # `time ! command` negates the pipeline's status
    _run_rest(effects, invocation, _skip_assignments(effects, argv, index, "time"), "time")
    return effects


_FLOCK = _spec(
    values="-w -E -c --wait --timeout --conflict-exit-code --command",
    flags="-s -x -e -u -n -o -F -h -V --shared --exclusive --unlock --nb --nonblock --close --no-fork "
    "--verbose --help --version",
)


def _flock(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _FLOCK)
    _unknown_options(effects, "flock", parsed)
    commands = parsed.values("-c", "--command")
    index = parsed.rest + 1  # skip the lock FILE (or FD)
    if index < len(argv) and argv[index].known and argv[index].text in ("-c", "--command"):
        if index + 1 < len(argv):
            commands.append(argv[index + 1])
        index = len(argv)
    for command in commands:
        effects.scripts.append(Script(command.text, command.known, "flock -c"))
    if not commands and index < len(argv):
        _run_rest(effects, invocation, index, "flock")
    return effects


_STRACE = _spec(
    values="-a -b -e -E -I -o -O -p -P -s -S -u -U -X --output --attach --user --env --trace --signal "
    "--abbrev --verbose --raw --read --write --string-limit --summary-sort-by --trace-path --columns "
    "--status --quiet --decode-fds --const-print-style --seccomp-bpf",
    flags="-c -C -d -D -f -F -h -i -k -n -q -r -t -T -v -V -w -x -y -z -Z --follow-forks "
    "--output-separately --summary-only --summary --no-abbrev --instruction-pointer --stack-trace "
    "--syscall-number --relative-timestamps --absolute-timestamps --syscall-times --summary-wall-clock "
    "--successful-only --failed-only --help --version",
)
_LTRACE = _spec(
    values="-a -A -D -e -F -l -n -o -p -s -u -w -x --align --output --library --indent",
    flags="-b -c -C -f -h -i -L -r -S -t -T -V --demangle --help --version",
)


def _tracer(spec: _OptionSpec) -> Callable[[Invocation], Effects]:
    def handle(invocation: Invocation) -> Effects:
        effects = Effects()
        who = _name(invocation.argv)
        parsed = _parse_options(invocation.argv, 1, spec)
        _unknown_options(effects, who, parsed)
        for target in parsed.values("-o", "--output"):
            _write_target(effects, f"{who} -o", target)
        if parsed.rest < len(invocation.argv) or not parsed.has("-p", "--attach"):
            _run_rest(effects, invocation, parsed.rest, who)
        return effects

    return handle


_COMMAND = _spec(flags="-p -v -V")


def _command(invocation: Invocation) -> Effects:
    """`command [-p] cmd` runs cmd; `command -v/-V` only describes it."""
    effects = Effects()
    parsed = _parse_options(invocation.argv, 1, _COMMAND)
    _unknown_options(effects, "command", parsed)
    if not parsed.has("-v", "-V"):
        _run_rest(effects, invocation, parsed.rest, "command")
    return effects


def _busybox(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    if len(argv) > 1 and argv[1].known and argv[1].text.startswith("-"):
        return effects  # --list, --help, --install: no applet runs
    _run_rest(effects, invocation, 1, "busybox")
    return effects


_XARGS = _spec(
    values="-a -d -E -I -L -n -P -s --arg-file --delimiter --max-lines --max-args --max-procs --max-chars "
    "--process-slot-var",
    flags="-0 -o -p -r -t -x --null --open-tty --interactive --no-run-if-empty --verbose --exit "
    "--show-limits --help --version",
    optional="-e -i -l --eof --replace",
)


def _with_placeholder(words: Sequence[Word], placeholder: str) -> tuple[Word, ...]:
    """Words holding the placeholder are filled in at run time with data nobody has seen."""
    return tuple(
        Word(word.text, word.raw, known=False) if placeholder in word.text else word for word in words
    )


def _xargs(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _XARGS)
    _unknown_options(effects, "xargs", parsed)
    command = argv[parsed.rest :] or (Word("echo", "echo"),)
    replace = [name for name, _ in parsed.options if name in ("-I", "-i", "--replace")]
    if replace:
        values = parsed.values("-I", "-i", "--replace")
        placeholder = values[-1].text if values else "{}"
        effects.invocations.append(Invocation(_with_placeholder(command, placeholder or "{}")))
    else:
        effects.invocations.append(Invocation(tuple(command), extra_args=True))
    return effects


_WATCH = _spec(
    values="-n -q -s --interval --equexit --shotsdir",
    flags="-b -c -C -e -g -p -r -t -w -x -h -v --beep --color --no-color --errexit --chgexit --precise "
    "--no-rerun --no-title --no-wrap --exec --help --version --no-linewrap",
    optional="-d --differences",
)


def _watch(invocation: Invocation) -> Effects:
    """watch joins its arguments and hands them to `sh -c`, unless -x runs them directly."""
    effects = Effects()
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _WATCH)
    _unknown_options(effects, "watch", parsed)
    rest = argv[parsed.rest :]
    if parsed.has("-x", "--exec"):
        _run_rest(effects, invocation, parsed.rest, "watch")
    elif rest:
        text = " ".join(word.text for word in rest)
        effects.scripts.append(Script(text, all(word.known for word in rest), "watch"))
    return effects


def _find(invocation: Invocation) -> Effects:
    """find -exec/-execdir/-ok/-okdir run commands with `{}` filled in; -delete and -fprint* write."""
    effects = Effects()
    argv = invocation.argv
    index = 1
    while index < len(argv):
        text = argv[index].text
        index += 1
        if text in ("-exec", "-execdir", "-ok", "-okdir"):
            end = index
            while end < len(argv) and argv[end].text not in (";", "+"):
                end += 1
            if end > index:
                effects.invocations.append(Invocation(_with_placeholder(argv[index:end], "{}")))
            index = end + 1
        elif text == "-delete":
            effects.file_writes.append("find -delete removes files")
        elif text in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            _write_target(effects, f"find {text}", argv[index] if index < len(argv) else None)
            index += 2 if text == "-fprintf" else 1
    return effects


_PARALLEL_VALUES = _spec(
    "-a -d -E -I -j -l -L -n -N -P -s -S --arg-file --delimiter --jobs --max-args --max-replace-args "
    "--sshlogin --colsep -C --tagstring --joblog --results --workdir --wd --timeout --retries --load "
    "--memfree --nice --halt --basefile --return --transferfile --env --shebang-wrap"
).values
_PARALLEL_SOURCES = frozenset({":::", "::::", ":::+", "::::+"})


def _parallel(invocation: Invocation) -> Effects:
    """GNU parallel builds commands at run time and runs them through a shell: best effort, always opaque."""
    effects = Effects(opaque=["parallel builds its commands at run time"])
    argv = invocation.argv
    index = 1
    while index < len(argv) and argv[index].text.startswith("-"):
        index += 2 if argv[index].text in _PARALLEL_VALUES else 1
    end = index
    while end < len(argv) and argv[end].text not in _PARALLEL_SOURCES:
        end += 1
    if end > index:
        text = " ".join(word.text for word in argv[index:end])
        effects.scripts.append(Script(text, all(word.known for word in argv[index:end]), "parallel"))
    return effects


_SSH = _spec(
    values="-b -B -c -D -E -e -F -I -i -J -L -l -m -O -o -p -P -Q -R -S -W -w",
    flags="-1 -2 -4 -6 -A -a -C -f -G -g -K -k -M -N -n -q -s -T -t -V -v -X -x -Y -y",
)
_SSH_LOCAL_COMMANDS = frozenset({"proxycommand", "localcommand", "knownhostscommand"})


def _ssh(invocation: Invocation) -> Effects:
    """A command for another host cannot be checked here: opaque, though its text is still read."""
    effects = Effects(opaque=["ssh runs commands on another host"])
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _SSH)
    for value in parsed.values("-o"):
        key, _, command = value.text.replace("=", " ", 1).partition(" ")
        if key.lower() in _SSH_LOCAL_COMMANDS:
            effects.scripts.append(Script(command.strip(), value.known, f"ssh -o {key}"))
    remote = argv[parsed.rest + 1 :]
    if remote:
        text = " ".join(word.text for word in remote)
        effects.scripts.append(Script(text, all(word.known for word in remote), "ssh remote command"))
    return effects


_SCRIPT = _spec(
    values="-c -E -I -O -B -T -m -o --command --echo --log-in --log-out --log-io --log-timing "
    "--logging-format --output-limit",
    flags="-a -e -f -q -h -V --append --return --flush --force --quiet --help --version",
    optional="-t --timing",
)


def _script(invocation: Invocation) -> Effects:
    """util-linux script: runs `-c STRING` (or a shell on stdin) and writes a typescript file."""
    effects = Effects()
    parsed = _parse_options(invocation.argv, 1, _SCRIPT, permute=True)
    _unknown_options(effects, "script", parsed)
    for command in parsed.values("-c", "--command"):
        effects.scripts.append(Script(command.text, command.known, "script -c"))
    if not parsed.has("-c", "--command"):
        effects.stdin_shell = "script"
    operands = parsed.operands
    _write_target(effects, "script", operands[0] if operands else Word("typescript", "typescript"))
    return effects


# -- shells and interpreters -----------------------------------------------------------------------------

_POSIX_SHELLS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "lksh", "oksh", "loksh", "ash", "hush",
     "yash", "posh", "rbash", "bosh"}
)  # fmt: skip
_OTHER_SHELLS = frozenset(
    {"fish", "csh", "tcsh", "nu", "xonsh", "elvish", "pwsh", "powershell", "rc", "es", "ion", "osh", "ysh"}
)  # fmt: skip
_SHELL_LONG_VALUES = frozenset({"--rcfile", "--init-file"})


def _posix_shell(invocation: Invocation) -> Effects:
    """sh/bash/...: `-c STRING` is parsed in turn; no string and no script file means code from stdin."""
    effects = Effects()
    argv = invocation.argv
    who = _name(argv)
    command_string = reads_stdin = False
    index = 1
    while index < len(argv):
        word = argv[index]
        text = word.text
        if not word.known:
            break  # read as the first operand (the -c string or a script); its Script is then opaque
        if text in ("--", "-"):
            index += 1
            break
        if text.startswith("--"):
            index += 2 if text in _SHELL_LONG_VALUES else 1
            continue
        if len(text) < 2 or text[0] not in "-+":
            break
        index += 1
        for letter in text[1:]:
            if letter == "c" and text[0] == "-":
                command_string = True
            elif letter in "si" and text[0] == "-":
                reads_stdin = True
            elif letter in "oO":
                index += 1  # -o NAME / -O NAME take the next word
    operands = argv[index:]
    if command_string:
        if operands:
            effects.scripts.append(Script(operands[0].text, operands[0].known, f"{who} -c"))
        elif invocation.extra_args:
            effects.opaque.append(f"{who} -c: the code comes from input read at run time")
    elif reads_stdin or not operands:
        if invocation.extra_args and not reads_stdin:
            effects.opaque.append(f"{who}: the script comes from input read at run time")
        else:
            effects.stdin_shell = who
    else:
        effects.opaque.append(f"{who} runs the script file {operands[0].text}, which cannot be analysed")
    return effects


def _other_shell(invocation: Invocation) -> Effects:
    return Effects(opaque=[f"{_name(invocation.argv)} is not a POSIX shell: its code cannot be analysed"])


@dataclass(frozen=True, slots=True)
class _Interpreter:
    code_letters: str  # in a short-option cluster: the code follows (python -c, perl -ne)
    value_letters: str = ""  # the rest of the cluster, or the next word, is a value
    attached_letters: str = ""  # the rest of the cluster is a value (perl -Mstrict)
    inplace_letters: str = ""  # edit files in place (perl -i, ruby -i)
    program_letters: str = ""  # the value names the program to run (python -m, php -f)
    stdin_letters: str = ""  # interactive / stdin mode
    code_long: frozenset[str] = frozenset()
    value_long: frozenset[str] = frozenset()


_PYTHON = _Interpreter("c", value_letters="WX", program_letters="m", stdin_letters="i")
_PERL = _Interpreter("eE", value_letters="I", attached_letters="Mmxl0CdD", inplace_letters="i")
_RUBY = _Interpreter("e", value_letters="IrCEFKTWx", attached_letters="0", inplace_letters="i")
_NODE = _Interpreter(
    "ep",
    value_letters="rC",
    stdin_letters="i",
    code_long=frozenset({"--eval", "--print"}),
    value_long=frozenset({"--require", "--import", "--loader", "--experimental-loader", "--conditions"}),
)
_PHP = _Interpreter("rBREF", value_letters="cdz", program_letters="f", stdin_letters="a")
_LUA = _Interpreter("e", value_letters="l", stdin_letters="i")
_EVAL_E = _Interpreter("eE", code_long=frozenset({"--eval", "--print"}))
_EXPECT = _Interpreter("c", program_letters="f", stdin_letters="i")
_TCL = _Interpreter("")
_INTERPRETERS: tuple[tuple[re.Pattern[str], _Interpreter], ...] = (
    (re.compile(r"(?:python|pypy)[0-9.]*"), _PYTHON),
    (re.compile(r"perl[0-9.]*"), _PERL),
    (re.compile(r"ruby[0-9.]*"), _RUBY),
    (re.compile(r"node(?:js)?"), _NODE),
    (re.compile(r"php[0-9.]*(?:-cli)?"), _PHP),
    (re.compile(r"lua(?:jit)?[0-9.]*"), _LUA),
    (re.compile(r"Rscript|julia|osascript|groovy|racket"), _EVAL_E),
    (re.compile(r"expect"), _EXPECT),
    (re.compile(r"(?:tclsh|wish)[0-9.]*"), _TCL),
)
_NO_PROGRAM_OPTIONS = frozenset({"--version", "-V", "--help", "-h", "-v"})


def _interpreter(invocation: Invocation, spec: _Interpreter) -> Effects:
    """Code given inline or on stdin cannot be analysed: opaque. A script file is left to the policy."""
    effects = Effects()
    argv = invocation.argv
    who = _name(argv)
    index = 1
    has_program = describe_only = False
    while index < len(argv) and not has_program:
        word = argv[index]
        text = word.text
        if not word.known:
            effects.opaque.append(f"{who}: argument {word.raw} is not known statically")
            index += 1
            continue
        if text == "--":
            index += 1
            break
        if not text.startswith("-") or text == "-":
            break
        index += 1
        if text in _NO_PROGRAM_OPTIONS:
            describe_only = True
            continue
        if text.startswith("--"):
            name = text.partition("=")[0]
            if name in spec.code_long:
                effects.opaque.append(f"{who} {name} runs code given on the command line")
                return effects
            if name in spec.value_long and "=" not in text:
                index += 1
            continue
        for position, letter in enumerate(text[1:], start=2):
            rest = text[position:]
            if letter in spec.code_letters:
                effects.opaque.append(f"{who} -{letter} runs code given on the command line")
                return effects
            if letter in spec.inplace_letters:
                effects.file_writes.append(f"{who} -{letter} edits files in place")
                break
            if letter in spec.stdin_letters:
                effects.opaque.append(f"{who} -{letter} reads code interactively")
                return effects
            if letter in spec.program_letters:
                has_program = True
                break
            if letter in spec.value_letters:
                index += 0 if rest else 1
                break
            if letter in spec.attached_letters:
                break
    operands = argv[index:]
    if has_program or describe_only:
        return effects
    if not operands or (operands[0].known and operands[0].text == "-"):
        source = "input read at run time" if invocation.extra_args else "stdin"
        effects.opaque.append(f"{who} reads its program from {source}")
    return effects


_AWK_VALUES = _spec(
    values="-F -v -f -e -E -i -l --field-separator --assign --file --source --exec --include --load",
    flags="-b -c -C -g -h -M -n -N -O -P -r -s -S -t -V --characters-as-bytes --traditional --copyright "
    "--gen-pot --help --bignum --use-lc-numeric --non-decimal-data --optimize --posix --re-interval "
    "--no-optimize --sandbox --lint-old --version",
    optional="-d -D -L -o -p --dump-variables --debug --lint --pretty-print --profile",
)
# system(), pipes to and from commands, print/printf redirected to a file, and gawk extensions.
_AWK_RISK = re.compile(r"\bsystem\s*\(|(?<!\|)\|(?!\|)|@load|@include|\bprintf?\b[^;{}\n]*>")


def _awk(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    who = _name(argv)
    parsed = _parse_options(argv, 1, _AWK_VALUES)
    _unknown_options(effects, who, parsed)
    if parsed.has("-f", "--file", "-E", "--exec", "-i", "--include", "-l", "--load"):
        effects.opaque.append(f"{who} loads program code from a file")
        return effects
    for option in ("-o", "-p", "-d", "--pretty-print", "--profile", "--dump-variables"):
        if parsed.has(option):
            effects.file_writes.append(f"{who} {option} writes a file")
    programs = parsed.values("-e", "--source")
    if not programs and parsed.rest < len(argv):
        programs = [argv[parsed.rest]]
    sandboxed = parsed.has("--sandbox", "-S")
    for program in programs:
        if not program.known:
            effects.opaque.append(f"{who}: the program text is not known statically")
        elif _AWK_RISK.search(program.text) and not sandboxed:
            effects.opaque.append(f"{who} program can run commands or write files")
    return effects


_SED = _spec(
    values="-e -f -l --expression --file --line-length",
    flags="-n -E -r -s -u -z -b --quiet --silent --regexp-extended --separate --unbuffered --null-data "
    "--posix --debug --sandbox --follow-symlinks --binary --help --version",
    optional="-i --in-place",
)


def _sed(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _SED, permute=True)
    _unknown_options(effects, "sed", parsed)
    if parsed.has("-i", "--in-place"):
        effects.file_writes.append("sed -i edits files in place")
    if parsed.has("-f", "--file"):
        effects.opaque.append("sed reads its script from a file")
        return effects
    scripts = parsed.values("-e", "--expression")
    operands = parsed.operands
    if not scripts and operands:
        scripts = [operands[0]]
    for script in scripts:
        if not script.known:
            effects.opaque.append("sed: the script is not known statically")
            continue
        runs, writes, understood = _sed_script(script.text)
        if not understood:
            effects.opaque.append("sed: cannot analyse the script")
        elif parsed.has("--sandbox"):
            continue
        if runs:
            effects.opaque.append("sed script runs commands (e)")
        if writes:
            effects.file_writes.append("sed script writes files (w)")
    return effects


_SED_SIMPLE = frozenset("=dDgGhHlnNpPxzF")
_SED_TO_EOL = frozenset("aicrRwWe")


def _sed_script(script: str) -> tuple[bool, bool, bool]:
    """(runs commands, writes files, understood) for a GNU sed script."""
    runs = writes = False
    i = 0
    n = len(script)

    def skip_address(i: int) -> int:
        if i < n and script[i].isdigit():
            while i < n and (script[i].isdigit() or script[i] == "~"):
                i += 1
        elif i < n and script[i] == "$":
            i += 1
        elif i < n and script[i] in "/\\":
            delimiter = script[i + 1] if script[i] == "\\" and i + 1 < n else "/"
            i = _sed_delimited(script, i + (2 if script[i] == "\\" else 1), delimiter)
            while 0 <= i < n and script[i] in "IM":
                i += 1
        return i

    while 0 <= i < n:
        if script[i] in " \t\n;}{":
            i += 1
            continue
        if script[i] == "#":
            end = script.find("\n", i)
            i = n if end < 0 else end
            continue
        i = skip_address(i)
        if 0 <= i < n and script[i] == ",":
            i += 1
            if i < n and script[i] in "+~":
                i += 1
            i = skip_address(i)
        while 0 <= i < n and script[i] in " \t!":
            i += 1
        if not 0 <= i < n:
            return runs, writes, False
        command = script[i]
        i += 1
        if command in _SED_SIMPLE or command in "{}":
            continue
        if command in "qQLv":
            while i < n and script[i] not in ";\n}":
                i += 1
        elif command in ":bTt":
            while i < n and script[i] not in ";\n":
                i += 1
        elif command in _SED_TO_EOL:
            runs = runs or command == "e"
            writes = writes or command in "wW"
            end = script.find("\n", i)
            i = n if end < 0 else end
        elif command in "sy":
            if i >= n or script[i] in "\n\\":
                return runs, writes, False
            delimiter = script[i]
            i = _sed_delimited(script, _sed_delimited(script, i + 1, delimiter), delimiter)
            if command == "s":
                while 0 <= i < n and script[i] not in ";\n}":
                    flag = script[i]
                    i += 1
                    if flag == "e":
                        runs = True
                    elif flag == "w":
                        writes = True
                        end = script.find("\n", i)
                        i = n if end < 0 else end
                    elif not (flag.isdigit() or flag in "gpiImM \t"):
                        return runs, writes, False
        else:
            return runs, writes, False
    return runs, writes, i >= 0


def _sed_delimited(script: str, i: int, delimiter: str) -> int:
    """Index after the closing delimiter of a sed regex/replacement starting at `i`; -1 if unterminated."""
    while 0 <= i < len(script):
        if script[i] == "\\":
            i += 2
        elif script[i] == delimiter:
            return i + 1
        else:
            i += 1
    return -1


# -- builtins that run or evaluate code -------------------------------------------------------------------


def _eval(invocation: Invocation) -> Effects:
    words = invocation.argv[1:]
    if words and words[0].known and words[0].text == "--":
        words = words[1:]  # eval takes `--` like other builtins
    if not words:
        return Effects()
    text = " ".join(word.text for word in words)
    return Effects(scripts=[Script(text, all(word.known for word in words), "eval")])


def _source(invocation: Invocation) -> Effects:
    target = invocation.argv[1].text if len(invocation.argv) > 1 else "a file"
    return Effects(opaque=[f"{_name(invocation.argv)} runs {target}, which cannot be analysed"])


def _trap(invocation: Invocation) -> Effects:
    parsed = _parse_options(invocation.argv, 1, _spec(flags="-l -p -P"))
    operands = invocation.argv[parsed.rest :]
    if len(operands) >= 2 and operands[0].text != "-":
        return Effects(scripts=[Script(operands[0].text, operands[0].known, "trap")])
    return Effects()


def _opaque_with(options: tuple[str, ...], reason: str) -> Callable[[Invocation], Effects]:
    """Builtins that take code through an option (hash -p, enable -f, mapfile -C, complete -C...)."""

    def handle(invocation: Invocation) -> Effects:
        for word in invocation.argv[1:]:
            text = word.text
            if not word.known or any(
                text == option or (text.startswith("-") and not text.startswith("--") and option[1] in text)
                for option in options
            ):
                return Effects(opaque=[f"{_name(invocation.argv)} {reason}"])
        return Effects()

    return handle


def _always_opaque(reason: str) -> Callable[[Invocation], Effects]:
    def handle(invocation: Invocation) -> Effects:
        return Effects(opaque=[f"{_name(invocation.argv)} {reason}"])

    return handle


def _alias(invocation: Invocation) -> Effects:
    if any("=" in word.text or not word.known for word in invocation.argv[1:]):
        return Effects(opaque=["alias defines commands at run time"])
    return Effects()


_DECLARE = _spec(flags="-a -A -f -F -g -I -l -n -p -r -t -u -x -i")


def _declare(invocation: Invocation) -> Effects:
    """declare/typeset/local/export/readonly: what they set, and attributes that evaluate code."""
    effects = Effects()
    argv = invocation.argv
    who = _name(argv)
    for word in argv[1:]:
        text = word.text
        if word.known and text[:1] in "-+" and len(text) > 1 and not text.startswith("--"):
            if "i" in text[1:] or "n" in text[1:]:
                effects.opaque.append(f"{who} {text}: integer and nameref variables evaluate code")
            continue
        if text == "--":
            continue
        problem = _name_problem(word, who)
        if problem:
            effects.opaque.append(problem)
    return effects


_READ = _spec(values="-a -d -i -n -N -p -t -u", flags="-e -r -s")


def _read(invocation: Invocation) -> Effects:
    effects = Effects()
    argv = invocation.argv
    parsed = _parse_options(argv, 1, _READ)
    for word in (*parsed.values("-a"), *argv[parsed.rest :]):
        problem = _name_problem(word, "read")
        if problem:
            effects.opaque.append(problem)
    return effects


def _names_after(option: str | None, who: str) -> Callable[[Invocation], Effects]:
    """printf -v NAME, wait -p NAME, test -v NAME, unset NAME...: the names must be plain."""

    def handle(invocation: Invocation) -> Effects:
        effects = Effects()
        words = invocation.argv[1:]
        names = (
            [words[i + 1] for i, word in enumerate(words[:-1]) if word.text == option]
            if option
            else [word for word in words if not word.text.startswith("-")]
        )
        for word in names:
            problem = _name_problem(word, who)
            if problem:
                effects.opaque.append(problem)
        return effects

    return handle


def _getopts(invocation: Invocation) -> Effects:
    words = invocation.argv[1:]
    problem = _name_problem(words[1], "getopts") if len(words) > 1 else None
    return Effects(opaque=[problem] if problem else [])


# -- programs that write files -------------------------------------------------------------------------------


def _tee(invocation: Invocation) -> Effects:
    effects = Effects()
    parsed = _parse_options(
        invocation.argv,
        1,
        _spec(flags="-a -i -p --append --ignore-interrupts --help --version", optional="--output-error"),
        permute=True,
    )
    for target in parsed.operands:
        _write_target(effects, "tee", target)
    return effects


def _dd(invocation: Invocation) -> Effects:
    effects = Effects()
    for word in invocation.argv[1:]:
        if word.text.startswith("of="):
            _write_target(effects, "dd", Word(word.text[3:], word.raw, word.known))
    return effects


_SORT = _spec(
    values="-k -t -o -S -T --key --field-separator --output --buffer-size --temporary-directory "
    "--parallel --batch-size --compress-program --files0-from --sort --random-source",
    flags="-b -c -C -d -f -g -h -i -M -m -n -r -R -s -u -V -z --check --merge --reverse --unique",
)


def _sort(invocation: Invocation) -> Effects:
    effects = Effects()
    parsed = _parse_options(invocation.argv, 1, _SORT, permute=True)
    for target in parsed.values("-o", "--output"):
        _write_target(effects, "sort -o", target)
    if parsed.has("--compress-program"):
        effects.opaque.append("sort --compress-program runs another program")
    return effects


# -- the table -------------------------------------------------------------------------------------------

_Handler = Callable[[Invocation], Effects]

_HANDLERS: dict[str, _Handler] = {
    "sudo": _sudo,
    "sudoedit": _sudoedit,
    "doas": _doas,
    "env": _env,
    "su": _su,
    "runuser": _su,
    "nohup": _wrapper(_spec(flags="--help --version")),
    "nice": _nice,
    "ionice": _no_command_when(
        _spec(
            values="-c -n -p -P -u --class --classdata --pid --pgid --uid",
            flags="-t -h -V --ignore --help --version",
        ),
        ("-p", "--pid", "-P", "--pgid", "-u", "--uid"),
    ),
    "timeout": _wrapper(
        _spec(
            values="-k -s --kill-after --signal",
            flags="-f -p -v --foreground --preserve-status --verbose --help --version",
        ),
        operands_before_command=1,
    ),
    "stdbuf": _wrapper(_spec(values="-i -o -e --input --output --error", flags="--help --version")),
    "time": _time,
    "command": _command,
    "builtin": _wrapper(_spec()),
    "exec": _wrapper(_spec(values="-a", flags="-c -l")),
    "xargs": _xargs,
    "watch": _watch,
    "chroot": _shell_when_empty(
        _spec(values="--userspec --groups", flags="--skip-chdir --help --version"), operands_before=1
    ),
    "flock": _flock,
    "setsid": _wrapper(_spec(flags="-c -f -w -h -V --ctty --fork --wait --help --version")),
    "unbuffer": _wrapper(_spec(flags="-p")),
    "busybox": _busybox,
    "strace": _tracer(_STRACE),
    "ltrace": _tracer(_LTRACE),
    "nsenter": _shell_when_empty(
        _spec(
            values="-t -S -G -W --target --setuid --setgid --wdns",
            flags="-a -e -F -Z -c -h -V --all --env --no-fork --follow-context --join-cgroup "
            "--preserve-credentials --keep-caps --help --version",
            optional="-m -u -i -n -p -U -C -T -r -w --mount --uts --ipc --net --pid --user --cgroup --time "
            "--root --wd --user-parent",
        )
    ),
    "unshare": _shell_when_empty(
        _spec(
            values="-S -G -R -w --setuid --setgid --root --wd --propagation --setgroups --map-user "
            "--map-group --map-users --map-groups --monotonic --boottime",
            flags="-f -r -c -h -V --fork --map-root-user --map-current-user --map-auto --keep-caps --help "
            "--version",
            optional="-m -u -i -n -p -U -C -T --mount --uts --ipc --net --pid --user --cgroup --time "
            "--mount-proc --kill-child",
        )
    ),
    "chrt": _no_command_when(
        _spec(
            values="-T -P -D --sched-runtime --sched-period --sched-deadline",
            flags="-a -b -d -e -f -i -m -o -p -r -R -v -h -V --all-tasks --batch --deadline --ext --fifo "
            "--idle --max --other --pid --rr --reset-on-fork --verbose --help --version",
        ),
        ("-p", "--pid", "-m", "--max"),
        operands_before=1,
    ),
    "taskset": _no_command_when(
        _spec(flags="-a -c -p -h -V --all-tasks --cpu-list --pid --help --version"),
        ("-p", "--pid"),
        operands_before=1,
    ),
    "ssh": _ssh,
    "script": _script,
    "find": _find,
    "parallel": _parallel,
    "eval": _eval,
    "source": _source,
    ".": _source,
    "trap": _trap,
    "alias": _alias,
    "hash": _opaque_with(("-p",), "-p makes a name run another program"),
    "enable": _opaque_with(("-f",), "-f loads a builtin from a shared library"),
    "mapfile": _opaque_with(("-C",), "-C runs code for each line"),
    "readarray": _opaque_with(("-C",), "-C runs code for each line"),
    "complete": _opaque_with(("-C", "-F"), "-C/-F runs code"),
    "compgen": _opaque_with(("-C", "-F"), "-C/-F runs code"),
    "bind": _opaque_with(("-x",), "-x runs code"),
    "fc": _always_opaque("re-runs commands from the history"),
    "let": _always_opaque("evaluates arithmetic, which can run commands through array subscripts"),
    "coproc": _wrapper(_spec()),
    "declare": _declare,
    "typeset": _declare,
    "local": _declare,
    "export": _declare,
    "readonly": _declare,
    "read": _read,
    "printf": _names_after("-v", "printf -v"),
    "wait": _names_after("-p", "wait -p"),
    "test": _names_after("-v", "test -v"),
    "[": _names_after("-v", "test -v"),
    "unset": _names_after(None, "unset"),
    "getopts": _getopts,
    "tee": _tee,
    "dd": _dd,
    "sort": _sort,
    "sed": _sed,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "nawk": _awk,
}
for _shell_name in _POSIX_SHELLS:
    _HANDLERS[_shell_name] = _posix_shell
for _shell_name in _OTHER_SHELLS:
    _HANDLERS[_shell_name] = _other_shell


def program_effects(invocation: Invocation) -> Effects | None:
    """What the program in argv[0] does beyond being itself; None for a program with nothing to add."""
    if not invocation.argv:
        return None
    name = _name(invocation.argv)
    handler = _HANDLERS.get(name)
    if handler is not None:
        return handler(invocation)
    for pattern, spec in _INTERPRETERS:
        if pattern.fullmatch(name):
            return _interpreter(invocation, spec)
    return None
