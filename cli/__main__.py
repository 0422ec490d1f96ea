"""`python -m pausable.cli`: the `pausable` command without the console script (tests and launchers run it so)."""

from pausable.cli.main import main

main(prog_name="pausable")  # completes and reads like the script
