#!/usr/bin/env python
"""Runs ``ssgraphrec bench study first_command`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("first_command", sys.argv[1:])
