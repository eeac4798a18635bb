"""Analysis of finished rows, pure functions on tables: matrix assembly and correlations (`matrix`), Table 1,
Fig. 5 curves and the Theorem-1 check (`tables`), estimator ranking (`ranking`), claims and verdicts
(`summary`) and the paper's figures (`figures`). A new statistic, table or figure goes here.

May import `estimators` and the edges; it reads no files of its own (the analyze stage does)."""
