"""The board side: what a deploy bundle runs on a board and what the kit measures with, one package for both.

The runner (run.py's `main`), the session every model is opened in, the timing loop, the trtexec
reader, the energy meters, the bundle manifest's checks, and the two base pieces they stand on
(error types, sysfs/procfs roots). Relative imports only and nothing of the kit outside it: deploy
bundles copy this folder whole (as edgewise_board/), and the kit imports it as edgewise.board.
"""
