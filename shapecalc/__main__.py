"""python -m shapecalc"""

from .cli import run

run()
