"""python -m dbpulse.cli"""

from dbpulse.cli import main

main()
