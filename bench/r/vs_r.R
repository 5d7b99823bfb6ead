# R doing the run's statistics on the app's frame, timed inside R (bench/vs_r.py).
# Usage: Rscript vs_r.R in.csv out_dir reference_dir landmark_days reference_rate at_risk_months
#   in.csv         the analysis dataset (flags 0/1, NA missing), read once before the clock
#   out_dir        where every result is written after the clock stops, and timing.csv
#   reference_dir  tests/analysis/r: survival_reference.R (paper: survfit, survdiff, coxph)
#                  and beyond_reference.R (landmark, tmerge + coxph, multi-state survfit,
#                  binom.test, prop.test), the scripts the tests compare the app with
# Timed: those two scripts, cox.zph of every Cox model they fit (as the app tests every
# model), and Table 2's fisher.test and binom.test per subgroup. Not timed: reading the CSV,
# loading the survival package, writing the results (the scripts' write.csv is caught in
# memory and written after the clock stops).
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
in_csv <- args[1]; out_dir <- args[2]; reference_dir <- args[3]
frame <- read.csv(in_csv, stringsAsFactors = FALSE)

read.csv <- function(...) frame
written <- list()
write.csv <- function(x, file, ...) written[[basename(file)]] <<- x
zph_rows <- list()
coxph <- function(...) {
  fit <- survival::coxph(..., x = TRUE)
  table <- cox.zph(fit)$table
  zph_rows[[length(zph_rows) + 1]] <<- data.frame(
    fit = length(zph_rows) + 1, term = rownames(table), chisq = table[, "chisq"],
    df = table[, "df"], p = table[, "p"])
  fit
}
script_args <- NULL
commandArgs <- function(trailingOnly = FALSE) script_args

started <- proc.time()[["elapsed"]]
started_cpu <- sum(proc.time()[c("user.self", "sys.self")])
script_args <- c(in_csv, out_dir, "0,3,6,9,12,15,18")
source(file.path(reference_dir, "survival_reference.R"), local = new.env())
paper_done <- proc.time()[["elapsed"]]
script_args <- c(in_csv, out_dir, args[4], args[5], args[6])
beyond <- new.env()
source(file.path(reference_dir, "beyond_reference.R"), local = beyond)
# Table 2: Fisher's exact test and the Clopper-Pearson CI of each level, among the evaluable
# (beyond_reference.R's `subgroups` and `responder`).
subgroups <- beyond$subgroups; responder <- beyond$responder
fisher_rows <- list()
for (variable in names(subgroups)) {
  flag <- subgroups[[variable]][[1]]
  known <- !is.na(flag)
  m <- table(factor(flag[known], 0:1), factor(responder[known], c(TRUE, FALSE)))
  ci <- lapply(1:2, function(i) binom.test(m[i, 1], sum(m[i, ]))$conf.int)
  fisher_rows[[length(fisher_rows) + 1]] <- data.frame(
    variable = variable, p_value = fisher.test(m)$p.value,
    ci1_lower = ci[[1]][1], ci1_upper = ci[[1]][2], ci2_lower = ci[[2]][1],
    ci2_upper = ci[[2]][2])
}
finished <- proc.time()[["elapsed"]]
finished_cpu <- sum(proc.time()[c("user.self", "sys.self")])

written[["fisher.csv"]] <- do.call(rbind, fisher_rows)
written[["zph.csv"]] <- do.call(rbind, zph_rows)
written[["timing.csv"]] <- data.frame(
  r_s = finished - started, r_cpu_s = finished_cpu - started_cpu, paper_s = paper_done - started, beyond_s = finished - paper_done)
for (name in names(written)) {
  utils::write.csv(written[[name]], file.path(out_dir, name), row.names = FALSE)
}
