"""Write shapecalc's shell completion scripts, one file per shell.

Usage: python completions/generate.py [DIR]

DIR defaults to this folder. The scripts come from Typer's own templates, the
ones `shapecalc --install-completion` installs, so a checked-in script and an
installed one are the same text. They hold no command names: each TAB runs
shapecalc, which answers from the app as it is, so only a Typer upgrade can
change them.
"""

import argparse
from pathlib import Path

from typer._completion_shared import get_completion_script

PROG_NAME = "shapecalc"
# Typer derives this name from the program name; the scripts export it to ask
# shapecalc for candidates instead of running a command.
COMPLETE_VAR = "_SHAPECALC_COMPLETE"
# zsh finds completion functions by file name: _<command> on $fpath.
FILES = {
    "bash": "shapecalc.bash",
    "zsh": "_shapecalc",
    "fish": "shapecalc.fish",
    "powershell": "shapecalc.ps1",
}


def scripts() -> dict[str, str]:
    """File name -> script text, for every shell Typer supports."""
    return {
        name: get_completion_script(
            prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell
        )
        + "\n"
        for shell, name in FILES.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=Path(__file__).parent,
        help="where to write the scripts (default: this folder)",
    )
    folder = parser.parse_args(argv).dir
    if not folder.is_dir():
        parser.error(f"{folder} is not a folder")
    for name, text in scripts().items():
        (folder / name).write_text(text)
        print(folder / name)


if __name__ == "__main__":
    main()
