#!/usr/bin/env python
"""Runs ``ssgraphrec bench study sharded_prototype`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("sharded_prototype", sys.argv[1:])
