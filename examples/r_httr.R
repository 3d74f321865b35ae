#!/usr/bin/env Rscript
# KServe v2 JSON inference from R with httr + jsonlite against deconvd's up1d.
#   Debian: apt-get install r-base-core r-cran-httr r-cran-jsonlite
#   Rscript examples/r_httr.R [BASE_URL]   (default http://127.0.0.1:8080)
# Prints: up1d [1, 4, 1] 2.5 0.5 5.75 2.5
suppressPackageStartupMessages({ library(httr); library(jsonlite) })

args <- commandArgs(trailingOnly = TRUE)
base <- sub("/+$", "", if (length(args) >= 1) args[[1]] else "http://127.0.0.1:8080")
body <- list(inputs = list(list(name = "input", shape = c(1, 2, 2), datatype = "FP32",
                                data = c(1, 2, 3, 4))))
r <- POST(paste0(base, "/v2/models/up1d/infer"), body = toJSON(body, auto_unbox = TRUE),
          content_type_json(), timeout(10))
res <- fromJSON(content(r, as = "text", encoding = "UTF-8"), simplifyVector = TRUE)
if (status_code(r) != 200) stop(sprintf("HTTP %d: %s", status_code(r), res$error))
out <- res$outputs
cat(sprintf("up1d [%s] %s\n", paste(out$shape[[1]], collapse = ", "),
            paste(as.character(unlist(out$data)), collapse = " ")))
