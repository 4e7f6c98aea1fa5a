#!/usr/bin/env python
"""Runs ``ssgraphrec bench study layer_mean`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("layer_mean", sys.argv[1:])
