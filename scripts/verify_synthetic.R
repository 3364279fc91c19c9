# Independent check of the committed synthetic cohort in R (nlme): Rscript scripts/verify_synthetic.R
suppressMessages(library(nlme))
d <- "data/raw/synthetic"
s <- read.csv(file.path(d, "subjects.csv"), stringsAsFactors = FALSE)
o <- read.csv(file.path(d, "outcomes.csv"), stringsAsFactors = FALSE)
m <- read.csv(file.path(d, "mri.csv"), stringsAsFactors = FALSE)
cat("randomised:", table(s$arm), "\n")
b <- o[o$visit_month == 0, c("subject_id", "vas_pain", "odi")]; names(b) <- c("subject_id", "bv", "bo")
x <- merge(s[, c("subject_id", "arm")], b, by = "subject_id")
m12 <- o[o$visit_month == 12, c("subject_id", "vas_pain", "odi")]
x <- merge(x, m12, by = "subject_id", all.x = TRUE)
vm <- ifelse(is.na(x$bv) | is.na(x$vas_pain), NA, (x$bv - x$vas_pain) >= 20 - 1e-9 & (x$bv - x$vas_pain) >= 0.2 * x$bv - 1e-9 & (x$bv - x$vas_pain) > 0)
om <- ifelse(is.na(x$bo) | is.na(x$odi), NA, (x$bo - x$odi) >= 0.2 * x$bo - 1e-9 & (x$bo - x$odi) > 0)
resp <- ifelse(!is.na(vm) & vm | !is.na(om) & om, TRUE, ifelse(!is.na(vm) & !is.na(om), FALSE, NA))
tab <- table(x$arm[!is.na(resp)], resp[!is.na(resp)])
print(tab)
cat("responders %:", round(100 * tab[, "TRUE"] / rowSums(tab)), "\n")
ct <- chisq.test(tab[, c("TRUE", "FALSE")])
cat(sprintf("Yates chisq p = %.6f (rounded %.2f)\n", ct$p.value, ct$p.value))
for (meas in c("vas_pain", "odi", "sf36_pcs", "sf36_mcs")) {
  bb <- o[o$visit_month == 0, c("subject_id", meas)]; names(bb)[2] <- "base"
  y <- merge(o[o$visit_month > 0, c("subject_id", "visit_month", meas)], bb, by = "subject_id")
  names(y)[3] <- "val"; y$change <- y$val - y$base
  y <- merge(y, s[, c("subject_id", "arm")], by = "subject_id")
  y <- y[!is.na(y$change) & !is.na(y$base), ]
  y$visit <- factor(y$visit_month, levels = c(1, 3, 6, 12, 24)); y$k <- as.integer(y$visit)
  y$arm <- factor(y$arm, levels = c("Sham", "BM-MSC"))
  y$id <- factor(y$subject_id)
  y <- y[order(y$id, y$k), ]
  f <- gls(change ~ visit * arm + visit * base, data = y, correlation = corSymm(form = ~ k | id),
           weights = varIdent(form = ~ 1 | visit), method = "REML", na.action = na.omit)
  cf <- coef(f); V <- vcov(f); ps <- c()
  for (v in levels(y$visit)) {
    L <- setNames(rep(0, length(cf)), names(cf)); L["armBM-MSC"] <- 1
    if (v != "1") L[paste0("visit", v, ":armBM-MSC")] <- 1
    est <- sum(L * cf); se <- sqrt(drop(t(L) %*% V %*% L))
    ps <- c(ps, 2 * pt(-abs(est / se), df = length(unique(y$id)) - 1))
  }
  cat(sprintf("gls %s: p by visit 1,3,6,12,24 = %s\n", meas, paste(sprintf("%.3f", ps), collapse = ", ")))
}
t0 <- m[m$visit_month == 0, c("subject_id", "t2_np_ms")]; names(t0)[2] <- "b"
t12 <- m[m$visit_month == 12, c("subject_id", "t2_np_ms")]
z <- merge(merge(t0, t12, by = "subject_id"), s[, c("subject_id", "arm")], by = "subject_id")
z <- z[!is.na(z$b) & !is.na(z$t2_np_ms), ]; z$ch <- z$t2_np_ms - z$b
cat(sprintf("T2 ANCOVA arm p = %.3f (n = %d)\n", summary(lm(ch ~ arm + b, data = z))$coefficients[2, 4], nrow(z)))
