#!/usr/bin/env python
"""Runs ``ssgraphrec bench study batch_rows`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("batch_rows", sys.argv[1:])
