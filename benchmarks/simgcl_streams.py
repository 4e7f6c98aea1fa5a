#!/usr/bin/env python
"""Runs ``ssgraphrec bench study simgcl_streams`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("simgcl_streams", sys.argv[1:])
