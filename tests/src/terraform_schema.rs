//! Terraform provider schemas read offline from the jsii assemblies npm's `@cdktf/provider-*`
//! packages ship (generated from each provider's schema), and a checker that holds the
//! `resource` and `data` blocks of a Terraform directory against them: unknown arguments and
//! blocks, an attribute written as a block or the reverse, missing required arguments, a single
//! block repeated, and references to attributes a resource does not export.
//!
//! The jsii facts used: a resource class's docs name its Terraform type ("Represents a {@link
//! .../docs/resources/lambda_function aws_lambda_function}"); its `<Class>Config` interface lists
//! the arguments, `optional` unless required, each documented with a link ending in
//! `#<terraform_name>` and, for a nested block, a summary "<name> block."; a block's type is the
//! struct itself when it may appear once, a list of it otherwise; the class's instance
//! properties are what a reference may read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use hcl::expr::{Expression, TraversalOperator};
use hcl::{Block, Body, Structure};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Assembly {
    types: HashMap<String, TypeDef>,
}

#[derive(Deserialize)]
struct TypeDef {
    kind: String,
    #[serde(default)]
    docs: Docs,
    #[serde(default)]
    properties: Vec<Prop>,
}

#[derive(Deserialize, Default)]
struct Docs {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    remarks: Option<String>,
}

#[derive(Deserialize)]
struct Prop {
    name: String,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    docs: Docs,
    #[serde(rename = "type")]
    ty: Value,
    #[serde(default, rename = "static")]
    is_static: bool,
}

/// One argument of a resource or block.
#[derive(Debug, Clone)]
pub enum Arg {
    /// `name = value`.
    Attribute {
        /// Whether it must be set.
        required: bool,
    },
    /// `name { ... }`.
    Block {
        /// Whether at least one must be written.
        required: bool,
        /// Whether it may appear at most once.
        single: bool,
        /// Its own arguments.
        schema: BlockSchema,
    },
}

/// The arguments of a resource or a nested block, by Terraform name.
#[derive(Debug, Clone, Default)]
pub struct BlockSchema {
    /// Arguments by name.
    pub args: BTreeMap<String, Arg>,
}

/// One resource or data source type.
#[derive(Debug, Clone, Default)]
pub struct TypeSchema {
    /// Its arguments and blocks.
    pub body: BlockSchema,
    /// What a reference may read, names normalised ([`normalised`]).
    pub exports: HashSet<String>,
}

/// Every resource (`resource`) and data source (`data`) type of the loaded providers.
#[derive(Debug, Default)]
pub struct Schemas {
    /// By (`resource` | `data`, Terraform type).
    pub types: HashMap<(String, String), TypeSchema>,
}

/// A name without underscores, lower case: `output_base64sha256` and jsii's
/// `outputBase64Sha256` compare equal.
pub fn normalised(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn camel_to_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Terraform name of a property: the `#fragment` of its registry link.
fn terraform_name(prop: &Prop) -> String {
    let text = format!(
        "{} {}",
        prop.docs.summary.as_deref().unwrap_or_default(),
        prop.docs.remarks.as_deref().unwrap_or_default()
    );
    text.split("registry.terraform.io")
        .nth(1)
        .and_then(|link| link.split('#').nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| camel_to_snake(&prop.name))
}

fn is_block(prop: &Prop) -> bool {
    prop.docs
        .summary
        .as_deref()
        .is_some_and(|s| s.trim_end().ends_with(" block."))
}

/// The struct a block property holds, and whether it holds one (not a list).
fn block_struct(ty: &Value) -> Option<(String, bool)> {
    if let Some(fqn) = ty.get("fqn").and_then(Value::as_str) {
        return Some((fqn.to_owned(), true));
    }
    if let Some(el) = ty.get("collection").and_then(|c| c.get("elementtype")) {
        return block_struct(el).map(|(f, _)| (f, false));
    }
    if let Some(types) = ty
        .get("union")
        .and_then(|u| u.get("types"))
        .and_then(Value::as_array)
    {
        return types
            .iter()
            .filter_map(block_struct)
            .find(|(f, _)| f != "cdktf.IResolvable")
            .map(|(f, _)| (f, false));
    }
    None
}

impl Schemas {
    /// Loads every resource and data source of the jsii assemblies in `dir` (`*.jsii`).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut schemas = Self::default();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsii"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no .jsii assembly in {}", dir.display()));
        }
        for file in files {
            let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let assembly: Assembly =
                serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            schemas.add(&assembly);
        }
        Ok(schemas)
    }

    fn add(&mut self, assembly: &Assembly) {
        for (fqn, def) in &assembly.types {
            if def.kind != "class" {
                continue;
            }
            let Some(summary) = def.docs.summary.as_deref() else {
                continue;
            };
            let Some(link) = summary.strip_prefix("Represents a {@link ") else {
                continue;
            };
            let mut parts = link.trim_end_matches("}.").split_whitespace();
            let (Some(url), Some(tf_type)) = (parts.next(), parts.next()) else {
                continue;
            };
            let kind = if url.contains("/docs/data-sources/") {
                "data"
            } else if url.contains("/docs/resources/") {
                "resource"
            } else {
                continue;
            };
            let Some(config) = assembly.types.get(&format!("{fqn}Config")) else {
                continue;
            };
            let body = block_schema(assembly, config, 0);
            let exports = def
                .properties
                .iter()
                .filter(|p| !p.is_static && !p.name.ends_with("Input"))
                .map(|p| normalised(&p.name))
                .chain(body.args.keys().map(|k| normalised(k)))
                .collect();
            self.types.insert(
                (kind.to_owned(), tf_type.to_owned()),
                TypeSchema { body, exports },
            );
        }
    }
}

/// Terraform's own arguments on every `resource` and `data` block.
const META_ARGUMENTS: &[&str] = &["count", "for_each", "depends_on", "provider"];
const META_BLOCKS: &[&str] = &["lifecycle", "provisioner", "connection"];

fn block_schema(assembly: &Assembly, def: &TypeDef, depth: usize) -> BlockSchema {
    let mut schema = BlockSchema::default();
    for prop in &def.properties {
        let name = terraform_name(prop);
        if META_ARGUMENTS.contains(&name.as_str()) || META_BLOCKS.contains(&name.as_str()) {
            continue;
        }
        let arg = match (is_block(prop), block_struct(&prop.ty)) {
            (true, Some((nested, single))) if depth < 8 => Arg::Block {
                required: !prop.optional,
                single,
                schema: assembly
                    .types
                    .get(&nested)
                    .map(|d| block_schema(assembly, d, depth + 1))
                    .unwrap_or_default(),
            },
            _ => Arg::Attribute {
                required: !prop.optional,
            },
        };
        schema.args.insert(name, arg);
    }
    schema
}

/// Every block of the `.tf` files in `dir`, in one body.
pub fn load_dir(dir: &Path) -> Body {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    let mut all = Body::builder();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let body: Body = hcl::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for block in body.blocks() {
            all = all.add_block(block.clone());
        }
    }
    all.build()
}

/// Types Terraform itself provides.
const BUILT_IN: &[&str] = &["terraform_data", "null_resource"];

impl Schemas {
    /// Everything in `body` (one Terraform directory) that the providers' schemas refuse.
    pub fn violations(&self, body: &Body) -> Vec<String> {
        let mut v = Vec::new();
        let mut declared: HashSet<(String, String, String)> = HashSet::new();
        for block in body.blocks() {
            let kind = block.identifier();
            if kind != "resource" && kind != "data" {
                continue;
            }
            let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
            let [tf_type, name] = labels[..] else {
                v.push(format!("{kind} block with labels {labels:?}"));
                continue;
            };
            declared.insert((kind.to_owned(), tf_type.to_owned(), name.to_owned()));
            if BUILT_IN.contains(&tf_type) {
                continue;
            }
            match self.types.get(&(kind.to_owned(), tf_type.to_owned())) {
                Some(schema) => check_body(
                    &format!("{kind}.{tf_type}.{name}"),
                    block.body(),
                    &schema.body,
                    true,
                    &mut v,
                ),
                None => v.push(format!("{kind} type {tf_type} does not exist")),
            }
        }
        self.check_references(body, &declared, &mut v);
        v
    }

    fn check_references(
        &self,
        body: &Body,
        declared: &HashSet<(String, String, String)>,
        v: &mut Vec<String>,
    ) {
        let mut exprs = Vec::new();
        collect_expressions(body, &mut exprs);
        for expr in exprs {
            let mut traversals = Vec::new();
            traversals_of(expr, &mut traversals);
            for (root, ops) in traversals {
                let names: Vec<Option<&str>> = ops
                    .iter()
                    .map(|op| match op {
                        TraversalOperator::GetAttr(id) => Some(id.as_str()),
                        _ => None,
                    })
                    .collect();
                let (kind, tf_type, rest) = if root == "data" {
                    match names.first() {
                        Some(Some(t)) => ("data", t.to_string(), &names[1..]),
                        _ => continue,
                    }
                } else {
                    ("resource", root.clone(), &names[..])
                };
                let Some(schema) = self.types.get(&(kind.to_owned(), tf_type.clone())) else {
                    continue;
                };
                let Some(Some(name)) = rest.first() else {
                    continue;
                };
                let what = format!(
                    "{}{tf_type}.{name}",
                    if kind == "data" { "data." } else { "" }
                );
                if !declared.contains(&(kind.to_owned(), tf_type.clone(), name.to_string())) {
                    v.push(format!("reference to undeclared {what}"));
                    continue;
                }
                // The attribute read: the next name, after any index (`[0]`, `[each.key]`).
                let attribute = rest[1..].iter().find_map(|n| *n);
                if let Some(attribute) = attribute
                    && !schema.exports.contains(&normalised(attribute))
                {
                    v.push(format!(
                        "{what}.{attribute}: {tf_type} exports no {attribute}"
                    ));
                }
            }
        }
    }
}

fn check_body(at: &str, body: &Body, schema: &BlockSchema, top: bool, v: &mut Vec<String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(a) => {
                let key = a.key();
                if top && META_ARGUMENTS.contains(&key) {
                    continue;
                }
                match schema.args.get(key) {
                    Some(Arg::Attribute { .. }) => {}
                    Some(Arg::Block { .. }) => {
                        v.push(format!("{at}: {key} is a block, written as an attribute"))
                    }
                    None => v.push(format!("{at}: unknown argument {key}")),
                }
                *seen.entry(key.to_owned()).or_default() += 1;
            }
            Structure::Block(b) => {
                let id = b.identifier();
                if top && META_BLOCKS.contains(&id) {
                    continue;
                }
                let (name, content, dynamic) = if id == "dynamic" {
                    let name = b.labels().first().map(|l| l.as_str()).unwrap_or_default();
                    let content = b
                        .body()
                        .blocks()
                        .find(|c| c.identifier() == "content")
                        .map(Block::body);
                    (name, content, true)
                } else {
                    (id, Some(b.body()), false)
                };
                match schema.args.get(name) {
                    Some(Arg::Block {
                        schema: nested,
                        single,
                        ..
                    }) => {
                        let count = seen.entry(name.to_owned()).or_default();
                        *count += if dynamic { 2 } else { 1 };
                        if *single && *count > 1 && !dynamic {
                            v.push(format!("{at}: {name} may appear once, and appears again"));
                        }
                        if let Some(content) = content {
                            check_body(&format!("{at}.{name}"), content, nested, false, v);
                        }
                    }
                    Some(Arg::Attribute { .. }) => {
                        v.push(format!("{at}: {name} is an attribute, written as a block"))
                    }
                    None => v.push(format!("{at}: unknown block {name}")),
                }
            }
        }
    }
    for (name, arg) in &schema.args {
        let required = match arg {
            Arg::Attribute { required } | Arg::Block { required, .. } => *required,
        };
        if required && !seen.contains_key(name) {
            v.push(format!("{at}: required argument {name} is missing"));
        }
    }
}

fn collect_expressions<'a>(body: &'a Body, out: &mut Vec<&'a Expression>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(a) => out.push(a.expr()),
            // `moved` and `removed` name addresses that are gone by design.
            Structure::Block(b) if matches!(b.identifier(), "moved" | "removed") => {}
            Structure::Block(b) => collect_expressions(b.body(), out),
        }
    }
}

/// Every traversal rooted at a variable in `expr`: (root, operators).
fn traversals_of(expr: &Expression, out: &mut Vec<(String, Vec<TraversalOperator>)>) {
    use hcl::expr::*;
    match expr {
        Expression::Traversal(t) => {
            if let Expression::Variable(var) = &t.expr {
                out.push((var.to_string(), t.operators.clone()));
            } else {
                traversals_of(&t.expr, out);
            }
            for op in &t.operators {
                if let TraversalOperator::Index(i) = op {
                    traversals_of(i, out);
                }
            }
        }
        Expression::Variable(var) => out.push((var.to_string(), Vec::new())),
        Expression::Array(items) => items.iter().for_each(|i| traversals_of(i, out)),
        Expression::Object(o) => {
            for (k, val) in o {
                if let ObjectKey::Expression(e) = k {
                    traversals_of(e, out);
                }
                traversals_of(val, out);
            }
        }
        Expression::FuncCall(f) => f.args.iter().for_each(|a| traversals_of(a, out)),
        Expression::Parenthesis(e) => traversals_of(e, out),
        Expression::Conditional(c) => {
            traversals_of(&c.cond_expr, out);
            traversals_of(&c.true_expr, out);
            traversals_of(&c.false_expr, out);
        }
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => traversals_of(&u.expr, out),
            Operation::Binary(b) => {
                traversals_of(&b.lhs_expr, out);
                traversals_of(&b.rhs_expr, out);
            }
        },
        Expression::ForExpr(f) => {
            traversals_of(&f.collection_expr, out);
            if let Some(k) = &f.key_expr {
                traversals_of(k, out);
            }
            traversals_of(&f.value_expr, out);
            if let Some(c) = &f.cond_expr {
                traversals_of(c, out);
            }
        }
        Expression::TemplateExpr(t) => {
            // Interpolations: parse the template and walk its expressions.
            if let Ok(template) = hcl::Template::from_expr(t) {
                template_traversals(&template, out);
            }
        }
        _ => {}
    }
}

fn template_traversals(template: &hcl::Template, out: &mut Vec<(String, Vec<TraversalOperator>)>) {
    use hcl::template::Element;
    for element in template.elements() {
        match element {
            Element::Interpolation(i) => traversals_of(&i.expr, out),
            Element::Directive(d) => match d.as_ref() {
                hcl::template::Directive::If(i) => {
                    traversals_of(&i.cond_expr, out);
                    template_traversals(&i.true_template, out);
                    if let Some(f) = &i.false_template {
                        template_traversals(f, out);
                    }
                }
                hcl::template::Directive::For(f) => {
                    traversals_of(&f.collection_expr, out);
                    template_traversals(&f.template, out);
                }
            },
            Element::Literal(_) => {}
        }
    }
}
