#!/usr/bin/env python
"""Runs ``ssgraphrec bench study reorder`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("reorder", sys.argv[1:])
