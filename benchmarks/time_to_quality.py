#!/usr/bin/env python
"""Runs ``ssgraphrec bench study time_to_quality`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("time_to_quality", sys.argv[1:])
