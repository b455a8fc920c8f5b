"""The report stage's parts (stages/report.py only assembles them): the pipeline's outputs as
read (outputs), the page and its two renderings (page), the figures it draws (figures), and
the prose, in two parts (journey, results)."""
