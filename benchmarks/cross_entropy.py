#!/usr/bin/env python
"""Runs ``ssgraphrec bench study cross_entropy`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("cross_entropy", sys.argv[1:])
