"""`python -m zoo …` and `accelerate launch -m zoo …` run the CLI."""

from zoo.cli import main

main()
