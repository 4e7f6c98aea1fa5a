#!/usr/bin/env python
"""Runs ``ssgraphrec bench study full_softmax`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("full_softmax", sys.argv[1:])
