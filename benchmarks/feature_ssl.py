#!/usr/bin/env python
"""Runs ``ssgraphrec bench study feature_ssl`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("feature_ssl", sys.argv[1:])
