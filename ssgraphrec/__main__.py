"""``python -m ssgraphrec``: the command line, as torchrun launches it
(``torchrun --nproc_per_node 2 -m ssgraphrec train ...``)."""

from .cli import console_main

if __name__ == "__main__":
    console_main()
