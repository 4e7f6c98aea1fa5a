#!/usr/bin/env python
"""Runs ``ssgraphrec bench study bigi_planted`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("bigi_planted", sys.argv[1:])
