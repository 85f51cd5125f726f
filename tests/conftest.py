import sys
from pathlib import Path

# Test helpers (ringpair, testpmd) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
