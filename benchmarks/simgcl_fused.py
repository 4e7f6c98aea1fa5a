#!/usr/bin/env python
"""Runs ``ssgraphrec bench study simgcl_fused`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("simgcl_fused", sys.argv[1:])
