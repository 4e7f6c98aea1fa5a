#!/usr/bin/env python
"""Runs ``ssgraphrec bench study spmm_blocks`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("spmm_blocks", sys.argv[1:])
