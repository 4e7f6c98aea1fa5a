#!/usr/bin/env python
"""Runs ``ssgraphrec bench study selfrec_style`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("selfrec_style", sys.argv[1:])
