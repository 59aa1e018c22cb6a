#!/usr/bin/env python3
"""The PostgreSQL bench: bench/databases.py --engine postgres (kept for the commands in the
notes of earlier sessions)."""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
os.execv(sys.executable, [sys.executable, os.path.join(here, "databases.py"), "--engine", "postgres", *sys.argv[1:]])
