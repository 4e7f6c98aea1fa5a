#!/usr/bin/env python
"""Runs ``ssgraphrec bench study ssl_gradient_balance`` (ssgraphrec/bench/studies/)."""

import sys

from ssgraphrec.bench.studies import run_study

if __name__ == "__main__":
    run_study("ssl_gradient_balance", sys.argv[1:])
