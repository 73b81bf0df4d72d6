"""Shell completion: the checked-in scripts are current, and real shells complete.

Each shell loads the script from completions/ and completes the way it does
when a person presses TAB; the candidates come from the venv's shapecalc. A
shell that is not installed is skipped, except under CI, which installs them.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
BIN = Path(sys.executable).parent
SCRIPTS = {
    "bash": "shapecalc.bash",
    "zsh": "_shapecalc",
    "fish": "shapecalc.fish",
    "powershell": "shapecalc.ps1",
}
# What the command line holds when TAB is pressed, and what must be offered.
CASES = [
    ("shapecalc c", ["check", "conv"]),
    ("shapecalc rnn --bi", ["--bias", "--bidirectional"]),
    ("shapecalc rnn --mode l", ["lstm"]),
    ("shapecalc conv --padding-mode c", ["circular"]),
    ("shapecalc rnn --device ", ["cpu", "cuda", "meta"]),
    ("shapecalc conv --format ", ["json", "plain", "shape", "table"]),
]
PLAIN_QUERY = [
    "conv",
    "--in-channels",
    "3",
    "--out-channels",
    "16",
    "--kernel-size",
    "3",
    "--input-shape",
    "8,3,224,224",
    "--format",
    "json",
]

# bash: the words as readline splits them, then the function `complete -F`
# registered for shapecalc, called as readline calls it.
BASH_DRIVER = r"""
source "$1"; shift
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
spec=$(complete -p "$1")
func=${spec##* -F }; func=${func%% *}
"$func" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""

# zsh completes only inside the line editor, so an interactive zsh runs in a
# pseudo-terminal and gets the line and a real TAB. compadd, which every
# completion function ends in, is wrapped to also write the matches to a file;
# the calls with -O/-A/-D only filter candidates and add nothing.
ZSH_DRIVER = r"""
zmodload zsh/zpty
script=$1 out=$2 line=$3
zpty shell zsh -f -i
zpty -w shell "autoload -Uz compinit && compinit -u -D && source ${(q)script}"
zpty -w shell 'compadd() {
  if (( ${argv[(I)-[OAD]]} )); then builtin compadd "$@"; return; fi
  local -a matches
  builtin compadd -O matches "$@"
  print -rl -- $matches >> '${(q)out}'
  builtin compadd "$@"
}'
zpty -w shell 'comppostfuncs=(exit)'
zpty -w -n shell "$line"$'\t'
while zpty -r shell chunk; do :; done
"""

FISH_DRIVER = 'source $argv[1]; complete --do-complete "$argv[2]"'


def require(shell: str) -> str:
    """The shell's path; a missing shell skips, or fails under CI."""
    path = shutil.which(shell)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is not installed, and CI must run this test")
        pytest.skip(f"{shell} is not installed")
    return path


def shell_env(home: Path, **extra: str) -> dict[str, str]:
    """The venv's shapecalc first on PATH, and a HOME the shells may write to."""
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PATH=path, HOME=str(home), **extra)


def run(argv: list[str], home: Path, **extra: str) -> subprocess.CompletedProcess:
    """Run in the repository root; callers check the exit code, showing stderr."""
    return subprocess.run(
        argv,
        check=False,
        env=shell_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def complete_bash(line: str, home: Path) -> list[str]:
    script = str(COMPLETIONS / SCRIPTS["bash"])
    argv = [require("bash"), "--norc", "--noprofile", "-c", BASH_DRIVER, "bash"]
    result = run(argv + [script] + line.split(" "), home)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def complete_zsh(line: str, home: Path) -> list[str]:
    script, out = str(COMPLETIONS / SCRIPTS["zsh"]), home / "matches"
    argv = [require("zsh"), "-f", "-c", ZSH_DRIVER, "zsh", script, str(out), line]
    result = run(argv, home)
    assert result.returncode == 0, result.stderr
    return out.read_text().splitlines() if out.exists() else []


def complete_fish(line: str, home: Path) -> list[str]:
    script = str(COMPLETIONS / SCRIPTS["fish"])
    argv = [require("fish"), "--no-config", "-c", FISH_DRIVER, script, line]
    result = run(argv, home)
    assert result.returncode == 0, result.stderr
    # fish prints "candidate<TAB>description".
    return [row.partition("\t")[0] for row in result.stdout.splitlines()]


COMPLETERS = {"bash": complete_bash, "zsh": complete_zsh, "fish": complete_fish}


def checked_in(name: str) -> str | None:
    path = COMPLETIONS / name
    return path.read_text() if path.is_file() else None


def test_checked_in_scripts_are_current(tmp_path):
    generate = [sys.executable, "completions/generate.py", str(tmp_path)]
    subprocess.run(generate, cwd=ROOT, check=True, capture_output=True)

    fresh = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert sorted(fresh) == sorted(SCRIPTS.values())
    stale = [
        name
        for name, text in fresh.items()
        if not (COMPLETIONS / name).is_file()
        or (COMPLETIONS / name).read_text() != text
    ]
    assert stale == [], (
        f"completions/ is out of date ({', '.join(sorted(stale))}): "
        "run `python completions/generate.py`"
    )


@pytest.mark.parametrize("line, expected", CASES, ids=[line for line, _ in CASES])
@pytest.mark.parametrize("shell", sorted(COMPLETERS))
def test_shell_completes(shell, line, expected, tmp_path):
    candidates = COMPLETERS[shell](line, tmp_path)
    assert sorted(candidates) == expected


def test_help_offers_install_completion(tmp_path):
    result = run([str(BIN / "shapecalc"), "--help"], tmp_path)
    assert result.returncode == 0
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


@pytest.mark.parametrize(
    "shell, installed",
    [
        ("bash", ".bash_completions/shapecalc.sh"),
        ("zsh", ".zfunc/_shapecalc"),
        ("fish", ".config/fish/completions/shapecalc.fish"),
    ],
)
def test_install_completion_installs_the_checked_in_script(shell, installed, tmp_path):
    # Run from inside the shell, as a person would: Typer detects the shell
    # from the parent process. `; exit` keeps the shell from exec'ing shapecalc.
    result = run(
        [require(shell), "-c", "shapecalc --install-completion; exit"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{shell} completion installed in {tmp_path}/")

    # Typer ends only the fish file with a newline; the checked-in ones all do.
    text = (tmp_path / installed).read_text().rstrip("\n")
    assert text == (COMPLETIONS / SCRIPTS[shell]).read_text().rstrip("\n")


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def test_completion_imports_no_torch_and_starts_like_a_query(tmp_path):
    shapecalc = str(BIN / "shapecalc")
    request = dict(
        _SHAPECALC_COMPLETE="complete_bash",
        COMP_WORDS="shapecalc conv --format ",
        COMP_CWORD="3",
    )
    traced = run([sys.executable, "-X", "importtime", shapecalc], tmp_path, **request)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.split() == ["table", "json", "plain", "shape"]
    imported = [
        row.rpartition("|")[2].strip()
        for row in traced.stderr.splitlines()
        if row.startswith("import time:")
    ]
    assert "shapecalc.cli" in imported
    assert [m for m in imported if m.split(".")[0] in ("torch", "numpy")] == []

    completion, query = [], []
    for _ in range(7):  # alternating, so both see the same machine load
        completion.append(wall_time([shapecalc], shell_env(tmp_path, **request)))
        query.append(wall_time([shapecalc, *PLAIN_QUERY], shell_env(tmp_path)))
    ratio = statistics.median(completion) / statistics.median(query)
    assert ratio <= 1.5, (
        f"a completion takes {ratio:.2f}x as long as a plain query "
        f"({statistics.median(completion) * 1000:.0f} ms against "
        f"{statistics.median(query) * 1000:.0f} ms)"
    )
