"""The run report: the stages' sections, the summary, sweeps' comparisons and plots, as HTML, Markdown and CSV.

The front door renders; edgewise.bench measures. Every figure shown carries its kind
(measured, emulated, estimated) from the record it came from.
"""
