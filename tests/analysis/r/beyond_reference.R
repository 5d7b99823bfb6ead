# Reference figures for analysis/beyond.py ("beyond the paper"), computed independently in R.
# Usage: Rscript beyond_reference.R in.csv out_dir landmark_days reference_rate at_risk_months
#   in.csv          the analysis dataset (analysis_dataset.csv columns; flags 0/1, NA missing)
#   out_dir         where the CSVs below are written
#   landmark_days   landmark day (e.g. 90)
#   reference_rate  reference response rate for the one-sided binomial test (e.g. 0.25)
#   at_risk_months  comma-separated months from the landmark for the numbers at risk
# Writes landmark_median.csv, landmark_logrank.csv, landmark_excluded.csv,
# landmark_numbers_at_risk.csv, landmark_km.csv, cox_time_varying.csv,
# cumulative_incidence.csv and response_rate.csv. Plain CSV (15 significant digits).
suppressPackageStartupMessages(library(survival))

args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = FALSE)
out_dir <- args[2]
landmark <- as.numeric(args[3])
reference_rate <- as.numeric(args[4])
risk_times <- as.numeric(strsplit(args[5], ",")[[1]])
days_per_month <- 30.4375

endpoints <- list(efs = c("efs_days", "efs_event"), os = c("os_days", "os_event"))
write_rows <- function(rows, name) {
  write.csv(do.call(rbind, rows), file.path(out_dir, name), row.names = FALSE)
}

# ---- Landmark: alive (OS) / alive and event-free (EFS) strictly after the landmark day ----
median_rows <- list(); logrank_rows <- list(); excluded_rows <- list()
risk_rows <- list(); km_rows <- list()
for (endpoint in names(endpoints)) {
  days <- data[[endpoints[[endpoint]][1]]]
  event <- data[[endpoints[[endpoint]][2]]]
  missing <- is.na(days) | is.na(event)
  eligible <- !missing & days > landmark
  early <- !missing & !eligible
  if (endpoint == "efs") {
    counts <- c(sum(early & event == 1 & data$efs_cause != 2),
                sum(early & event == 1 & data$efs_cause == 2))
  } else {
    counts <- sum(early & event == 1)
  }
  counts <- c(sum(eligible), counts, sum(early & event == 0), sum(missing))
  excluded_rows[[length(excluded_rows) + 1]] <- data.frame(
    endpoint = endpoint, status = c("included", rep("excluded", length(counts) - 1)),
    n = counts)

  lm <- data[eligible, ]
  lm$time <- (days[eligible] - landmark) / days_per_month
  lm$event <- event[eligible]
  lm$response_by_landmark <- as.integer(!is.na(lm$response_days) & lm$response_days <= landmark)
  lm$sct_by_landmark <- as.integer(!is.na(lm$sct_days) & lm$sct_days <= landmark)
  for (grouping in c("overall", "response_by_landmark", "sct_by_landmark")) {
    if (grouping == "overall") {
      parts <- list(all = lm)
    } else {
      parts <- list(no = lm[lm[[grouping]] == 0, ], yes = lm[lm[[grouping]] == 1, ])
      parts <- parts[sapply(parts, nrow) > 0]
    }
    for (group in names(parts)) {
      fit <- survfit(Surv(time, event) ~ 1, data = parts[[group]], conf.type = "log")
      key <- data.frame(endpoint = endpoint, grouping = grouping, group = group)
      table <- summary(fit)$table
      median_rows[[length(median_rows) + 1]] <- cbind(key, data.frame(
        n = table[["records"]], events = table[["events"]], median_months = table[["median"]],
        ci_lower = table[["0.95LCL"]], ci_upper = table[["0.95UCL"]]))
      at_risk <- summary(fit, times = risk_times, extend = TRUE)
      risk_rows[[length(risk_rows) + 1]] <- cbind(key, data.frame(
        time = at_risk$time, n_risk = at_risk$n.risk))
      km_rows[[length(km_rows) + 1]] <- cbind(key, data.frame(
        time = fit$time, n_risk = fit$n.risk, n_event = fit$n.event, n_censor = fit$n.censor,
        survival = fit$surv, std_err = fit$surv * fit$std.err, lower = fit$lower,
        upper = fit$upper))
    }
    if (grouping != "overall") {
      if (length(parts) > 1) {
        test <- survdiff(as.formula(paste("Surv(time, event) ~", grouping)), data = lm)
        chisq <- test$chisq; df <- length(test$n) - 1
        p <- pchisq(chisq, df, lower.tail = FALSE)
      } else {
        chisq <- NA; df <- NA; p <- NA
      }
      logrank_rows[[length(logrank_rows) + 1]] <- data.frame(
        endpoint = endpoint, grouping = grouping, chisq = chisq, df = df, p_value = p)
    }
  }
}
write_rows(median_rows, "landmark_median.csv")
write_rows(logrank_rows, "landmark_logrank.csv")
write_rows(excluded_rows, "landmark_excluded.csv")
write_rows(risk_rows, "landmark_numbers_at_risk.csv")
write_rows(km_rows, "landmark_km.csv")

# ---- Time-dependent Cox: tmerge's tdc() (a change on day t applies from day t on) ----
cox_row <- function(fit, terms, endpoint, model, n_patients, n_intervals, events) {
  coef <- setNames(rep(NA_real_, length(terms)), terms); se <- coef
  if (!is.null(fit)) {
    s <- summary(fit)$coefficients
    # As analysis/beyond.py MAX_COX_SE: a diverging coefficient (monotone likelihood) is NA.
    if (all(is.finite(s[, "se(coef)"])) && all(s[, "se(coef)"] <= 100)) {
      coef[rownames(s)] <- s[, "coef"]; se[rownames(s)] <- s[, "se(coef)"]
    }
  }
  z <- qnorm(0.975)
  data.frame(endpoint = endpoint, model = model, term = terms, coef = coef, se = se,
             hazard_ratio = exp(coef), ci_lower = exp(coef - z * se),
             ci_upper = exp(coef + z * se), p_value = 2 * pnorm(-abs(coef / se)),
             n_patients = n_patients, n_intervals = n_intervals, events = events)
}
fit_or_null <- function(formula, frame, terms, event_col) {
  # As analysis/beyond.py: NA rows unless every term varies and there is an event.
  varying <- all(sapply(terms, function(t) length(unique(frame[[t]])) > 1))
  if (!varying || sum(frame[[event_col]]) == 0) return(NULL)
  # R's default stop (relative log-likelihood change < 1e-9) can leave a coefficient ~1e-7
  # short of the maximum, 1e-6 on a large HR; iterate on to the maximum, as the Python side.
  suppressWarnings(coxph(formula, data = frame, ties = "efron",
                        control = coxph.control(eps = 1e-11, iter.max = 100)))
}
cox_rows <- list()
for (endpoint in names(endpoints)) {
  base <- data.frame(id = seq_len(nrow(data)), stop = data[[endpoints[[endpoint]][1]]],
                     event = data[[endpoints[[endpoint]][2]]], sct_days = data$sct_days,
                     response_days = data$response_days,
                     sct = as.integer(!is.na(data$allo_sct_after) & data$allo_sct_after == 1),
                     response = as.integer(!is.na(data$responder) & data$responder == 1))
  base <- base[!is.na(base$stop) & !is.na(base$event) & base$stop > 0, ]
  tv <- tmerge(base["id"], base, id = id, tstop = stop)
  tv <- tmerge(tv, base, id = id, death = event(stop, event), sct = tdc(sct_days),
               response = tdc(response_days))
  n_patients <- nrow(base); events <- sum(base$event)
  for (term in c("sct", "response")) {
    fit <- fit_or_null(as.formula(paste("Surv(stop, event) ~", term)), base, term, "event")
    cox_rows[[length(cox_rows) + 1]] <- cox_row(fit, term, endpoint, "naive_day1_univariate",
                                                n_patients, nrow(base), events)
  }
  for (term in c("sct", "response")) {
    fit <- fit_or_null(as.formula(paste("Surv(tstart, tstop, death) ~", term)), tv, term, "death")
    cox_rows[[length(cox_rows) + 1]] <- cox_row(fit, term, endpoint, "time_varying_univariate",
                                                n_patients, nrow(tv), events)
  }
  fit <- fit_or_null(Surv(tstart, tstop, death) ~ sct + response, tv, c("sct", "response"),
                     "death")
  cox_rows[[length(cox_rows) + 1]] <- cox_row(fit, c("sct", "response"), endpoint,
                                              "time_varying_both", n_patients, nrow(tv), events)
}
write_rows(cox_rows, "cox_time_varying.csv")

# ---- Competing risks: multi-state survfit (Aalen-Johansen) and 1 - KM ----
data$efs_months_lm <- data$efs_days / days_per_month
cif_rows <- list()
causes <- c(relapse_progression = 1, non_relapse_mortality = 2)
for (grouping in c("overall", "responder", "allo_sct_after")) {
  if (grouping == "overall") {
    parts <- list(all = data)
  } else {
    parts <- list(no = data[!is.na(data[[grouping]]) & data[[grouping]] == 0, ],
                  yes = data[!is.na(data[[grouping]]) & data[[grouping]] == 1, ])
    parts <- parts[sapply(parts, nrow) > 0]
  }
  for (group in names(parts)) {
    part <- parts[[group]]
    state <- factor(part$efs_cause, 0:2, labels = c("censor", "relapse", "nrm"))
    fit <- survfit(Surv(efs_months_lm, state) ~ 1, data = part)
    stopifnot(identical(fit$states, c("(s0)", "relapse", "nrm")))
    for (cause in names(causes)) {
      k <- causes[[cause]]
      km <- survfit(Surv(efs_months_lm, efs_cause == k) ~ 1, data = part)
      stopifnot(isTRUE(all.equal(km$time, fit$time)))
      cif_rows[[length(cif_rows) + 1]] <- data.frame(
        grouping = grouping, group = group, cause = cause, time = fit$time,
        n_risk = fit$n.risk[, 1], cumulative_incidence = fit$pstate[, k + 1],
        std_err = fit$std.err[, k + 1], ci_lower = fit$lower[, k + 1],
        ci_upper = fit$upper[, k + 1], one_minus_km = 1 - km$surv)
    }
  }
}
write_rows(cif_rows, "cumulative_incidence.csv")

# ---- Response rate: binom.test (exact CI, one-sided test) and prop.test (Wilson) ----
rate_row <- function(variable, level, responders) {
  responders <- responders[!is.na(responders)]
  n <- length(responders); k <- sum(responders)
  if (n == 0) {
    return(data.frame(variable = variable, level = level, n = 0, responders = 0, rate = NA,
                      exact_ci_lower = NA, exact_ci_upper = NA, wilson_ci_lower = NA,
                      wilson_ci_upper = NA, p_value_greater = NA))
  }
  exact <- binom.test(k, n)$conf.int
  wilson <- suppressWarnings(prop.test(k, n, correct = FALSE))$conf.int
  data.frame(variable = variable, level = level, n = n, responders = k, rate = k / n,
             exact_ci_lower = exact[1], exact_ci_upper = exact[2],
             wilson_ci_lower = wilson[1], wilson_ci_upper = wilson[2],
             p_value_greater = binom.test(k, n, p = reference_rate,
                                          alternative = "greater")$p.value)
}
evaluable <- data[!is.na(data$evaluable) & data$evaluable == 1, ]
responder <- evaluable$responder == 1
# Table 2 subgroups with the default cuts, from the dataset's own 0/1 flags.
category <- function(values, first, second) {
  ifelse(values %in% second, 1, ifelse(values %in% first, 0, NA))
}
subgroups <- list(
  age = list(evaluable$age_ge_55, c("<55", ">=55")),
  sex = list(category(evaluable$sex, "male", "female"), c("male", "female")),
  salvage_phase = list(evaluable$salvage_ge_2, c("1", ">=2")),
  time_from_diagnosis = list(evaluable$diagnosis_ge_12m, c("<12 months", ">=12 months")),
  ecog = list(evaluable$ecog_ge_2, c("0-1", ">=2")),
  cyto_risk_diagnosis = list(category(evaluable$cyto_risk_diagnosis, "standard", "high"),
                             c("standard", "high")),
  cyto_risk_start = list(category(evaluable$cyto_risk_start, "standard", "high"),
                         c("standard", "high")),
  emd = list(evaluable$emd, c("no", "yes")),
  marrow_blasts = list(evaluable$blasts_gt_50, c("<=50%", ">50%")),
  prior_allo_sct = list(evaluable$prior_allo_sct, c("no", "yes")),
  dexamethasone = list(evaluable$dexamethasone_gt_80, c("<=80 mg", ">80 mg"))
)
rate_rows <- list(rate_row("overall", "evaluable", responder),
                  rate_row("overall", "all treated", data$responder == 1))
for (variable in names(subgroups)) {
  flag <- subgroups[[variable]][[1]]; levels <- subgroups[[variable]][[2]]
  rate_rows[[length(rate_rows) + 1]] <- rate_row(variable, levels[1],
                                                 responder[!is.na(flag) & flag == 0])
  rate_rows[[length(rate_rows) + 1]] <- rate_row(variable, levels[2],
                                                 responder[!is.na(flag) & flag == 1])
}
write_rows(rate_rows, "response_rate.csv")
