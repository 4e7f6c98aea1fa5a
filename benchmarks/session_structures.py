#!/usr/bin/env python
"""Runs ``ssgraphrec bench study session_structures`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("session_structures", sys.argv[1:])
