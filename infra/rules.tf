# Rules and accounts reach the dispatcher as a Lambda layer holding one TOML file: a change is a
# `terraform apply`, with no rebuild and no 4 KB environment ceiling (a layer holds 50 MB). The
# file is validated by `wacapi check-config` before the layer version is created, so an invalid
# file stops the apply and the running version keeps its rules.
#
# The layer zip is built when Terraform reads the archive data source, at plan time: run plan and
# apply from the same working directory (a saved plan applied elsewhere finds no zip).

resource "terraform_data" "rules_check" {
  triggers_replace = [filesha256(var.rules_file)]

  provisioner "local-exec" {
    # Paths travel as environment variables, quoted by the shell: spaces or quotes in a path
    # cannot change the command.
    command = "\"$WACAPI_CLI\" check-config \"$WACAPI_RULES_FILE\""
    environment = {
      WACAPI_CLI        = local.wacapi_cli
      WACAPI_RULES_FILE = abspath(var.rules_file)
    }
  }
}

data "archive_file" "rules" {
  type        = "zip"
  output_path = "${path.module}/.build/rules-layer.zip"

  source {
    content  = file(var.rules_file)
    filename = "wacapi/rules.toml"
  }
}

resource "aws_lambda_layer_version" "rules" {
  layer_name               = "${var.name}-rules"
  description              = "wacapi rules and accounts (${basename(var.rules_file)})"
  filename                 = data.archive_file.rules.output_path
  source_code_hash         = data.archive_file.rules.output_base64sha256
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = [var.architecture]

  # The new version is checked (rules_check), created and given to the function before the old
  # one goes: a failing check leaves the dispatcher on the version it runs.
  lifecycle {
    create_before_destroy = true
  }

  depends_on = [terraform_data.rules_check]
}
