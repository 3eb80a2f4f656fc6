# Rules and accounts reach the dispatcher as a Lambda layer holding one TOML file: a change is a
# `terraform apply`, with no rebuild and no 4 KB environment ceiling (a layer holds 50 MB). The
# file is validated by `wacapi check-config` before the layer version is created, so an invalid
# file stops the apply and the running version keeps its rules.

resource "terraform_data" "rules_check" {
  count            = var.rules_file == null ? 0 : 1
  triggers_replace = [filesha256(var.rules_file)]

  provisioner "local-exec" {
    command = "${var.wacapi_cli} check-config ${var.rules_file}"
  }
}

data "archive_file" "rules" {
  count       = var.rules_file == null ? 0 : 1
  type        = "zip"
  output_path = "${path.module}/.build/rules-layer.zip"

  source {
    content  = file(var.rules_file)
    filename = "wacapi/rules.toml"
  }
}

resource "aws_lambda_layer_version" "rules" {
  count                    = var.rules_file == null ? 0 : 1
  layer_name               = "${var.name}-rules"
  description              = "wacapi rules and accounts (${basename(var.rules_file)})"
  filename                 = data.archive_file.rules[0].output_path
  source_code_hash         = base64sha256(file(var.rules_file))
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = [var.architecture]

  depends_on = [terraform_data.rules_check]
}
