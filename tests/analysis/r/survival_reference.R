# Reference survival figures from R's survival package for tests/analysis.
# Usage: Rscript survival_reference.R in.csv out_dir times
#   in.csv   analysis dataset (efs/os months and events, 0/1 covariates)
#   out_dir  where km.csv, medians.csv, logrank.csv, cox.csv and atrisk.csv are written
#   times    comma-separated times for the numbers at risk
# Plain CSV output (jsonlite may not be installed); write.csv keeps 15 significant digits.
suppressPackageStartupMessages(library(survival))

args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
out_dir <- args[2]
risk_times <- as.numeric(strsplit(args[3], ",")[[1]])

endpoints <- list(efs = c("efs_months", "efs_event"), os = c("os_months", "os_event"))
groupings <- c("overall", "responder", "allo_sct_after")
covariates <- c("responder", "allo_sct_after", "ecog_ge_2", "emd")

km_rows <- list(); median_rows <- list(); logrank_rows <- list()
cox_rows <- list(); risk_rows <- list()

subsets <- function(grouping) {
  if (grouping == "overall") return(list(all = data))
  # Grouping columns are 0/1; Python labels them no/yes.
  list(no = data[data[[grouping]] == 0, ], yes = data[data[[grouping]] == 1, ])
}

for (endpoint in names(endpoints)) {
  time_col <- endpoints[[endpoint]][1]
  event_col <- endpoints[[endpoint]][2]
  surv_formula <- paste0("Surv(", time_col, ", ", event_col, ")")

  for (grouping in groupings) {
    parts <- subsets(grouping)
    for (group in names(parts)) {
      part <- parts[[group]]
      fit <- survfit(as.formula(paste(surv_formula, "~ 1")), data = part,
                     conf.type = "log")
      key <- data.frame(endpoint = endpoint, grouping = grouping, group = group)
      # fit$std.err is the SE of the cumulative hazard (log S); summary() reports SE of S.
      km_rows[[length(km_rows) + 1]] <- cbind(key, data.frame(
        time = fit$time, n_risk = fit$n.risk, n_event = fit$n.event,
        n_censor = fit$n.censor, survival = fit$surv,
        std_err = fit$surv * fit$std.err, lower = fit$lower, upper = fit$upper))
      table <- summary(fit)$table
      median_rows[[length(median_rows) + 1]] <- cbind(key, data.frame(
        n = table[["records"]], events = table[["events"]],
        median_months = table[["median"]], ci_lower = table[["0.95LCL"]],
        ci_upper = table[["0.95UCL"]]))
      at_risk <- summary(fit, times = risk_times, extend = TRUE)
      risk_rows[[length(risk_rows) + 1]] <- cbind(key, data.frame(
        time = at_risk$time, n_risk = at_risk$n.risk))
    }
    if (grouping != "overall") {
      test <- survdiff(as.formula(paste(surv_formula, "~", grouping)), data = data)
      df <- length(test$n) - 1
      logrank_rows[[length(logrank_rows) + 1]] <- data.frame(
        endpoint = endpoint, grouping = grouping, chisq = test$chisq, df = df,
        p_value = pchisq(test$chisq, df, lower.tail = FALSE))
    }
  }

  models <- c(setNames(as.list(covariates), rep("univariate", length(covariates))),
              list(multivariable = covariates))
  for (i in seq_along(models)) {
    terms <- models[[i]]
    fit <- coxph(as.formula(paste(surv_formula, "~", paste(terms, collapse = " + "))),
                 data = data, ties = "efron")
    coefs <- summary(fit)$coefficients
    ci <- summary(fit)$conf.int
    cox_rows[[length(cox_rows) + 1]] <- data.frame(
      endpoint = endpoint, model = names(models)[i], term = rownames(coefs),
      coef = coefs[, "coef"], se = coefs[, "se(coef)"], hazard_ratio = coefs[, "exp(coef)"],
      ci_lower = ci[, "lower .95"], ci_upper = ci[, "upper .95"],
      p_value = coefs[, "Pr(>|z|)"])
  }
}

write_rows <- function(rows, name) {
  write.csv(do.call(rbind, rows), file.path(out_dir, name), row.names = FALSE)
}
write_rows(km_rows, "km.csv")
write_rows(median_rows, "medians.csv")
write_rows(logrank_rows, "logrank.csv")
write_rows(cox_rows, "cox.csv")
write_rows(risk_rows, "atrisk.csv")
