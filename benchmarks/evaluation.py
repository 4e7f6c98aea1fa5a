#!/usr/bin/env python
"""Runs ``ssgraphrec bench study evaluation`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("evaluation", sys.argv[1:])
