# scripts/build_paper_twin.py: survival medians and log-rank P values of the twin, by R.
# Usage: Rscript paper_twin_check.R cohort.csv (days; efs, efs_event, os, os_event, responder, sct)
suppressPackageStartupMessages(library(survival))
d <- read.csv(commandArgs(TRUE)[1]); d$efs <- d$efs / 30.4375; d$os <- d$os / 30.4375
med <- function(f) summary(f)$table[, "median"]
m1 <- function(f) summary(f)$table[["median"]]
p <- function(t) pchisq(t$chisq, 1, lower.tail = FALSE)
cat(sprintf("efs overall %.4f\n", m1(survfit(Surv(efs, efs_event) ~ 1, d))))
cat(sprintf("os overall %.4f\n", m1(survfit(Surv(os, os_event) ~ 1, d))))
cat(sprintf("efs by response %s P %.6f\n", paste(sprintf("%.4f", med(survfit(Surv(efs, efs_event) ~ responder, d))), collapse = " "), p(survdiff(Surv(efs, efs_event) ~ responder, d))))
cat(sprintf("os by response %s P %.6f\n", paste(sprintf("%.4f", med(survfit(Surv(os, os_event) ~ responder, d))), collapse = " "), p(survdiff(Surv(os, os_event) ~ responder, d))))
cat(sprintf("efs by SCT %s P %.6f\n", paste(sprintf("%.4f", med(survfit(Surv(efs, efs_event) ~ sct, d))), collapse = " "), p(survdiff(Surv(efs, efs_event) ~ sct, d))))
cat(sprintf("os by SCT %s P %.6f\n", paste(sprintf("%.4f", med(survfit(Surv(os, os_event) ~ sct, d))), collapse = " "), p(survdiff(Surv(os, os_event) ~ sct, d))))
cat(sprintf("follow-up (reverse KM) %.4f\n", m1(survfit(Surv(os, 1 - os_event) ~ 1, d))))
