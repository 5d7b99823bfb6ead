# Reference 2x2 statistics from base R for tests/analysis/test_tables.py.
# Usage: Rscript tables_reference.R in.csv out.csv
#   in.csv   columns a, b, c, d: the table [[a, b], [c, d]] (responders, non-responders)
#   out.csv  Pearson chi-square without continuity correction, Fisher exact P and the
#            Clopper-Pearson (binom.test) 95% CI of a / (a + b) and of c / (c + d)
tables <- read.csv(commandArgs(trailingOnly = TRUE)[1])
rows <- lapply(seq_len(nrow(tables)), function(i) {
  t <- tables[i, ]
  m <- matrix(c(t$a, t$c, t$b, t$d), nrow = 2)  # filled by column: rows are the levels
  chi <- suppressWarnings(chisq.test(m, correct = FALSE))
  first <- binom.test(t$a, t$a + t$b)$conf.int
  second <- binom.test(t$c, t$c + t$d)$conf.int
  data.frame(a = t$a, b = t$b, c = t$c, d = t$d,
             chisq = unname(chi$statistic), chisq_p = chi$p.value,
             fisher_p = fisher.test(m)$p.value,
             binom1_lower = first[1], binom1_upper = first[2],
             binom2_lower = second[1], binom2_upper = second[2])
})
write.csv(do.call(rbind, rows), commandArgs(trailingOnly = TRUE)[2], row.names = FALSE)
