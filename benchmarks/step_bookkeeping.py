#!/usr/bin/env python
"""Runs ``ssgraphrec bench study step_bookkeeping`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("step_bookkeeping", sys.argv[1:])
