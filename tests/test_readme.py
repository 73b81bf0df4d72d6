"""Every command in the README runs, and prints what the README shows.

```console blocks hold `$ command` lines followed by their output, run in a
pseudo-terminal 100 columns wide, as a reader would see them. ```sh blocks are
set-up commands: the first is run in a fresh copy of the repository.
`python tests/test_readme.py --update` rewrites the shown output.
"""

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def blocks(kind: str, text: str | None = None) -> list[str]:
    text = README.read_text() if text is None else text
    return re.findall(rf"^```{kind}\n(.*?)^```$", text, flags=re.S | re.M)


def examples(text: str | None = None) -> list[tuple[str, str]]:
    """(command, expected output) pairs of every console block."""
    pairs = []
    for block in blocks("console", text):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            pairs.append((command, output))
    return pairs


def shell_env(**extra: str) -> dict[str, str]:
    """The environment, with this Python's scripts (shapecalc) first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PATH=path, **extra)


def run_in_terminal(command: str) -> str:
    """Output of a shell command run in a pty, as a terminal would show it."""
    env = shell_env(COLUMNS="100", LINES="50", TERM="xterm", NO_COLOR="1")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        cwd=ROOT,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower side closed: the command is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    proc.wait(timeout=120)
    text = ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


@pytest.mark.parametrize("command, expected", examples(), ids=lambda v: v[:60])
def test_readme_example(command, expected):
    assert run_in_terminal(command) == expected


def test_ci_runs_the_readme_test_command():
    test_command = blocks("sh")[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.skipif(
    os.environ.get("SHAPECALC_FAST") == "1",
    reason="SHAPECALC_FAST=1 skips the fresh-install test",
)
def test_readme_setup_works_in_a_fresh_copy(tmp_path):
    """The first set-up command, in a copy holding only the tracked files."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for name in files.stdout.splitlines():
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT))
    )
    proc = subprocess.run(
        ["bash", "-c", blocks("sh")[0].strip()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "output\t5,64,10" in proc.stdout and "h_n\t8,64,5" in proc.stdout


def update() -> None:
    """Rewrite each console example's output with what the command prints now."""
    text = README.read_text()

    def fill(match: re.Match) -> str:
        out = []
        for command, _ in examples(match.group(0)):
            out.append(f"$ {command}\n{run_in_terminal(command)}")
        return "```console\n" + "".join(out) + "```"

    README.write_text(re.sub(r"^```console\n.*?^```$", fill, text, flags=re.S | re.M))


if __name__ == "__main__" and "--update" in sys.argv:
    update()


def test_readme_python_examples():
    import doctest

    for block in blocks("pycon"):
        test = doctest.DocTestParser().get_doctest(block, {}, "README", "README", 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0


def test_readme_ci_job_runs_as_written(tmp_path):
    """The `run: shapecalc ...` step of the CI example, in the repository."""
    (job,) = [b for b in blocks("yaml") if "runs-on" in b]
    command = re.search(r"- run: (shapecalc .*)", job).group(1)
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=shell_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2  # examples/ is not in an empty folder
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=shell_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout.count("\tpass\t")) == (0, 4)
    assert (tmp_path / "shapes.xml").read_text().count("<testcase") == 4


def test_pre_commit_hook_runs_its_entry_on_matching_files():
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    entry = re.search(r"entry: (.*)", hooks).group(1)
    files = re.compile(re.search(r"files: (.*)", hooks).group(1))
    specs = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*")
        if files.search(p.name) and ".venv" not in p.parts
    ]
    assert specs == ["examples/model.shapes.toml"]
    assert blocks("yaml")[1].count(entry) == 1  # the README shows the same hook
    proc = subprocess.run(
        [*entry.split(), *specs],
        cwd=ROOT,
        env=shell_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("\tpass\t") == 4
