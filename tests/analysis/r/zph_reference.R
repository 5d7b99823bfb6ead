# Reference proportional-hazards tests from R's survival package for tests/analysis.
# Usage: Rscript zph_reference.R in.csv out.csv
#   in.csv   columns: model, start (empty for right-censored data), stop, event, x1..xk
#            (covariates a model does not use are empty); one model per distinct `model`
#   out.csv  model, term, chisq, df, p: cox.zph(coxph(..., ties = "efron"))$table per model
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
rows <- list()
for (model in unique(data$model)) {
  part <- data[data$model == model, ]
  covariates <- grep("^x", names(part), value = TRUE)
  covariates <- covariates[sapply(covariates, function(c) all(!is.na(part[[c]])))]
  counting <- all(!is.na(part$start))
  outcome <- if (counting) "Surv(start, stop, event)" else "Surv(stop, event)"
  formula <- as.formula(paste(outcome, "~", paste(covariates, collapse = " + ")))
  fit <- coxph(formula, data = part, ties = "efron",
               control = coxph.control(eps = 1e-11, iter.max = 100))
  table <- cox.zph(fit)$table
  rows[[length(rows) + 1]] <- data.frame(model = model, term = rownames(table),
                                         chisq = table[, "chisq"], df = table[, "df"],
                                         p = table[, "p"])
}
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
