//! CloudFormation's intrinsic functions, resolved as far as a template alone allows.
//!
//! `Ref` to a parameter gives its value (`--parameter`, else its default), `Ref` to a resource
//! and `Fn::GetAtt` give a [`Val::Ref`]/[`Val::Att`] pointing at that resource (what AWS
//! would return, a physical ID, only exists after launch), except for the attributes that are
//! properties of the template (`VPC.CidrBlock`, `Subnet.CidrBlock`, ...). `Fn::Sub`, `Fn::Join`,
//! `Fn::Select`, `Fn::GetAZs`, `Fn::Cidr`, `Fn::Split`, `Fn::FindInMap`, `Fn::If` and the
//! condition functions are computed. What cannot be computed (`Fn::ImportValue`, a parameter
//! without a value, an attribute known only at launch used as text) is a [`Val::Unresolved`]
//! that carries the reason, for the report.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use ipnet::Ipv4Net;

use super::node::{Node, Value};

/// A resolved value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Val>),
    Map(Vec<(String, Val)>),
    /// `Ref` of a resource (its physical ID, known in AWS only).
    Ref(String),
    /// `Fn::GetAtt` of a resource attribute known in AWS only.
    Att(String, String),
    /// `AWS::NoValue`: the property is removed.
    NoValue,
    /// Cannot be computed from the template: why.
    Unresolved(String),
}

impl Val {
    /// The value as text (strings, numbers, booleans).
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Str(s) => Some(s.clone()),
            Self::Int(i) => Some(i.to_string()),
            Self::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Self::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Self::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn list(&self) -> &[Val] {
        match self {
            Self::List(items) => items,
            _ => &[],
        }
    }

    /// Why the value is not what a property needs, for the report.
    pub fn why_not(&self, wanted: &str) -> String {
        match self {
            Self::Unresolved(why) => why.clone(),
            Self::Ref(id) => format!("Ref {id} is known only in AWS, not {wanted}"),
            Self::Att(id, att) => format!("{id}.{att} is known only in AWS, not {wanted}"),
            other => format!("expected {wanted}, got {}", other.describe()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Null => "nothing".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Str(s) => format!("'{s}'"),
            Self::List(_) => "a list".to_owned(),
            Self::Map(_) => "a mapping".to_owned(),
            Self::Ref(id) => format!("Ref {id}"),
            Self::Att(id, a) => format!("{id}.{a}"),
            Self::NoValue => "AWS::NoValue".to_owned(),
            Self::Unresolved(why) => why.clone(),
        }
    }
}

/// The resource a value points at: `Ref X` or `X.Attribute` gives `X`, except the VPC
/// attributes that name another object (`VPC.DefaultSecurityGroup` gives
/// `VPC.DefaultSecurityGroup`).
pub fn target(v: &Val) -> Option<String> {
    match v {
        Val::Ref(id) => Some(id.clone()),
        Val::Att(id, att) if att == "DefaultSecurityGroup" || att == "DefaultNetworkAcl" => {
            Some(format!("{id}.{att}"))
        }
        Val::Att(id, _) => Some(id.clone()),
        _ => None,
    }
}

/// Pseudo parameters (`AWS::Region`, ...) that a deployment would fill in; overridable with
/// `--parameter AWS::Region=eu-west-1`.
const PSEUDO: [(&str, &str); 6] = [
    ("AWS::Region", "us-east-1"),
    ("AWS::AccountId", "123456789012"),
    ("AWS::StackName", "stack"),
    ("AWS::StackId", "stack-id"),
    ("AWS::Partition", "aws"),
    ("AWS::URLSuffix", "amazonaws.com"),
];

/// How deep evaluation may nest (attributes evaluating properties evaluating attributes...):
/// a cyclic template stops here instead of overflowing the stack.
const MAX_DEPTH: usize = 64;

/// How many availability zones `Fn::GetAZs` returns (they only name places, the router has
/// none).
const AZ_COUNT: u8 = 6;

/// The parts of a template the functions read.
pub struct Context<'a> {
    parameters: BTreeMap<String, Val>,
    mappings: Option<&'a Node>,
    conditions: BTreeMap<String, &'a Node>,
    /// Logical ID -> (type, properties).
    resources: BTreeMap<String, (String, Option<&'a Node>)>,
    condition_values: RefCell<BTreeMap<String, Val>>,
    depth: RefCell<usize>,
    region: String,
}

impl<'a> Context<'a> {
    /// `parameters`: the values the template's parameters take (defaults and overrides
    /// applied by the caller), pseudo parameters included or not.
    pub fn new(
        parameters: BTreeMap<String, Val>,
        mappings: Option<&'a Node>,
        conditions: BTreeMap<String, &'a Node>,
        resources: BTreeMap<String, (String, Option<&'a Node>)>,
    ) -> Self {
        let mut parameters = parameters;
        for (name, value) in PSEUDO {
            parameters
                .entry(name.to_owned())
                .or_insert_with(|| Val::Str(value.to_owned()));
        }
        let region = parameters
            .get("AWS::Region")
            .and_then(Val::text)
            .unwrap_or_else(|| PSEUDO[0].1.to_owned());
        Self {
            parameters,
            mappings,
            conditions,
            resources,
            condition_values: RefCell::new(BTreeMap::new()),
            depth: RefCell::new(0),
            region,
        }
    }

    /// The names of the pseudo parameters the context fills in.
    pub fn pseudo_parameters() -> impl Iterator<Item = &'static str> {
        PSEUDO.iter().map(|(n, _)| *n)
    }

    /// Whether a condition holds (`Err`: it cannot be decided, and why).
    pub fn condition(&self, name: &str) -> Result<bool, String> {
        match self.condition_value(name) {
            Val::Bool(b) => Ok(b),
            other => Err(other.why_not("a condition's true or false")),
        }
    }

    fn condition_value(&self, name: &str) -> Val {
        if let Some(v) = self.condition_values.borrow().get(name) {
            return v.clone();
        }
        let Some(node) = self.conditions.get(name) else {
            return Val::Unresolved(format!("no condition '{name}' in the template"));
        };
        // Guard against a condition that refers to itself.
        self.condition_values.borrow_mut().insert(
            name.to_owned(),
            Val::Unresolved(format!("condition '{name}' refers to itself")),
        );
        let v = self.eval(node);
        self.condition_values
            .borrow_mut()
            .insert(name.to_owned(), v.clone());
        v
    }

    /// Evaluates a node: plain values are copied, functions are computed.
    pub fn eval(&self, node: &Node) -> Val {
        {
            let mut depth = self.depth.borrow_mut();
            if *depth >= MAX_DEPTH {
                return Val::Unresolved(
                    "the template's references nest too deeply (a cycle?)".to_owned(),
                );
            }
            *depth += 1;
        }
        let v = self.eval_inner(node);
        *self.depth.borrow_mut() -= 1;
        v
    }

    fn eval_inner(&self, node: &Node) -> Val {
        if let Some(tag) = node.tag.as_deref()
            && let Some(short) = tag.strip_prefix('!')
            && !short.starts_with('!')
        {
            let name = match short {
                "Ref" | "Condition" => short.to_owned(),
                other => format!("Fn::{other}"),
            };
            let untagged = Node {
                tag: None,
                ..node.clone()
            };
            return self.function(&name, &untagged);
        }
        match &node.value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Str(f.to_string()),
            Value::Str(s) => Val::Str(s.clone()),
            Value::Seq(items) => Val::List(
                items
                    .iter()
                    .map(|n| self.eval(n))
                    .filter(|v| *v != Val::NoValue)
                    .collect(),
            ),
            Value::Map(entries) => {
                if let [(key, arg)] = entries.as_slice()
                    && (key == "Ref" || key == "Condition" || key.starts_with("Fn::"))
                {
                    return self.function(key, arg);
                }
                Val::Map(
                    entries
                        .iter()
                        .map(|(k, n)| (k.clone(), self.eval(n)))
                        .filter(|(_, v)| *v != Val::NoValue)
                        .collect(),
                )
            }
        }
    }

    fn function(&self, name: &str, arg: &Node) -> Val {
        match name {
            "Ref" => self.reference(arg),
            "Condition" => match self.eval(arg).text() {
                Some(c) => self.condition_value(&c),
                None => Val::Unresolved("Condition needs a condition's name".to_owned()),
            },
            "Fn::GetAtt" => self.get_att(arg),
            "Fn::Sub" => self.sub(arg),
            "Fn::Join" => self.join(arg),
            "Fn::Select" => self.select(arg),
            "Fn::GetAZs" => self.get_azs(arg),
            "Fn::Cidr" => self.cidr(arg),
            "Fn::Split" => self.split(arg),
            "Fn::FindInMap" => self.find_in_map(arg),
            "Fn::If" => self.if_(arg),
            "Fn::Equals" => self.equals(arg),
            "Fn::And" | "Fn::Or" => self.and_or(name == "Fn::And", arg),
            "Fn::Not" => match self.args(arg).as_slice() {
                [v] => match v.bool() {
                    Some(b) => Val::Bool(!b),
                    None => Val::Unresolved(v.why_not("true or false")),
                },
                _ => Val::Unresolved("Fn::Not takes one condition".to_owned()),
            },
            "Fn::Base64" => self.eval(arg),
            "Fn::Length" => match self.eval(arg) {
                Val::List(items) => Val::Int(i64::try_from(items.len()).unwrap_or(i64::MAX)),
                other => Val::Unresolved(other.why_not("a list")),
            },
            "Fn::ImportValue" => Val::Unresolved(
                "Fn::ImportValue reads another stack's output, which a template alone does not have"
                    .to_owned(),
            ),
            other => Val::Unresolved(format!("{other} is not supported by the importer")),
        }
    }

    /// Evaluates a function's argument list.
    fn args(&self, arg: &Node) -> Vec<Val> {
        match self.eval(arg) {
            Val::List(items) => items,
            other => vec![other],
        }
    }

    fn reference(&self, arg: &Node) -> Val {
        let Some(name) = self.eval(arg).text() else {
            return Val::Unresolved("Ref needs a name".to_owned());
        };
        self.ref_name(&name)
    }

    fn ref_name(&self, name: &str) -> Val {
        if name == "AWS::NoValue" {
            return Val::NoValue;
        }
        if name == "AWS::NotificationARNs" {
            return Val::List(Vec::new());
        }
        if let Some(v) = self.parameters.get(name) {
            return v.clone();
        }
        if self.resources.contains_key(name) {
            return Val::Ref(name.to_owned());
        }
        Val::Unresolved(format!(
            "Ref '{name}': no parameter or resource of that name"
        ))
    }

    fn get_att(&self, arg: &Node) -> Val {
        let (id, att) = match self.eval(arg) {
            Val::Str(s) => match s.split_once('.') {
                Some((a, b)) => (a.to_owned(), b.to_owned()),
                None => {
                    return Val::Unresolved(format!(
                        "Fn::GetAtt '{s}': expected RESOURCE.ATTRIBUTE"
                    ));
                }
            },
            Val::List(items) => match items.as_slice() {
                [a, b] => match (a.text(), b.text()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Val::Unresolved("Fn::GetAtt needs two names".to_owned()),
                },
                _ => return Val::Unresolved("Fn::GetAtt needs [RESOURCE, ATTRIBUTE]".to_owned()),
            },
            other => return Val::Unresolved(other.why_not("Fn::GetAtt's [RESOURCE, ATTRIBUTE]")),
        };
        self.attribute(&id, &att)
    }

    /// `RESOURCE.ATTRIBUTE`: a property when the attribute is one, else a pointer.
    fn attribute(&self, id: &str, att: &str) -> Val {
        let Some((kind, props)) = self.resources.get(id) else {
            return Val::Unresolved(format!("Fn::GetAtt {id}.{att}: no resource '{id}'"));
        };
        let property = match (kind.as_str(), att) {
            ("AWS::EC2::VPC" | "AWS::EC2::Subnet", "CidrBlock") => Some("CidrBlock"),
            ("AWS::EC2::Subnet" | "AWS::EC2::SecurityGroup", "VpcId") => Some("VpcId"),
            ("AWS::EC2::Instance", "PrivateIp") => Some("PrivateIpAddress"),
            ("AWS::EC2::NetworkInterface", "PrimaryPrivateIpAddress") => Some("PrivateIpAddress"),
            _ => None,
        };
        if let Some(p) = property
            && let Some(node) = props.and_then(|n| n.get(p))
        {
            return self.eval(node);
        }
        Val::Att(id.to_owned(), att.to_owned())
    }

    fn sub(&self, arg: &Node) -> Val {
        let (template, vars) = match &arg.value {
            Value::Seq(items) => match items.as_slice() {
                [t, vars] => (self.eval(t), Some(vars)),
                _ => {
                    return Val::Unresolved(
                        "Fn::Sub takes a string or [string, variables]".to_owned(),
                    );
                }
            },
            _ => (self.eval(arg), None),
        };
        let Some(template) = template.text() else {
            return Val::Unresolved(template.why_not("Fn::Sub's string"));
        };
        let mut out = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Val::Unresolved(format!("Fn::Sub '{template}': unclosed ${{"));
            };
            let var = &after[..end];
            rest = &after[end + 1..];
            if let Some(literal) = var.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            let value = match vars.and_then(|v| v.get(var)) {
                Some(node) => self.eval(node),
                None => match var.split_once('.') {
                    Some((id, att)) if !self.parameters.contains_key(var) => {
                        self.attribute(id, att)
                    }
                    _ => self.ref_name(var),
                },
            };
            match value.text() {
                Some(t) => out.push_str(&t),
                None => {
                    return Val::Unresolved(format!(
                        "Fn::Sub ${{{var}}}: {}",
                        value.why_not("text")
                    ));
                }
            }
        }
        out.push_str(rest);
        Val::Str(out)
    }

    fn join(&self, arg: &Node) -> Val {
        match self.args(arg).as_slice() {
            [delim, Val::List(items)] => {
                let Some(delim) = delim.text() else {
                    return Val::Unresolved("Fn::Join needs a delimiter".to_owned());
                };
                let mut parts = Vec::new();
                for item in items {
                    match item.text() {
                        Some(t) => parts.push(t),
                        None => {
                            return Val::Unresolved(format!("Fn::Join: {}", item.why_not("text")));
                        }
                    }
                }
                Val::Str(parts.join(&delim))
            }
            [_, other] => Val::Unresolved(format!("Fn::Join: {}", other.why_not("a list"))),
            _ => Val::Unresolved("Fn::Join takes [delimiter, list]".to_owned()),
        }
    }

    fn select(&self, arg: &Node) -> Val {
        match self.args(arg).as_slice() {
            [index, list] => {
                let Some(i) = index.int().and_then(|i| usize::try_from(i).ok()) else {
                    return Val::Unresolved(format!("Fn::Select: {}", index.why_not("an index")));
                };
                match list {
                    Val::List(items) => items.get(i).cloned().unwrap_or_else(|| {
                        Val::Unresolved(format!(
                            "Fn::Select index {i} is out of a list of {}",
                            items.len()
                        ))
                    }),
                    other => Val::Unresolved(format!("Fn::Select: {}", other.why_not("a list"))),
                }
            }
            _ => Val::Unresolved("Fn::Select takes [index, list]".to_owned()),
        }
    }

    fn get_azs(&self, arg: &Node) -> Val {
        let region = match self.eval(arg) {
            Val::Null => self.region.clone(),
            v => match v.text() {
                Some(r) if r.is_empty() => self.region.clone(),
                Some(r) => r,
                None => return Val::Unresolved(format!("Fn::GetAZs: {}", v.why_not("a region"))),
            },
        };
        Val::List(
            (b'a'..b'a' + AZ_COUNT)
                .map(|c| Val::Str(format!("{region}{}", char::from(c))))
                .collect(),
        )
    }

    fn cidr(&self, arg: &Node) -> Val {
        let args = self.args(arg);
        let [block, count, bits] = args.as_slice() else {
            return Val::Unresolved("Fn::Cidr takes [ipBlock, count, cidrBits]".to_owned());
        };
        let Some(block) = block.text() else {
            return Val::Unresolved(format!("Fn::Cidr: {}", block.why_not("a CIDR block")));
        };
        let (Some(count), Some(bits)) = (count.int(), bits.int()) else {
            return Val::Unresolved("Fn::Cidr needs numbers for count and cidrBits".to_owned());
        };
        match cidr_split(&block, count, bits) {
            Ok(nets) => Val::List(nets.into_iter().map(|n| Val::Str(n.to_string())).collect()),
            Err(why) => Val::Unresolved(format!("Fn::Cidr [{block}, {count}, {bits}]: {why}")),
        }
    }

    fn split(&self, arg: &Node) -> Val {
        match self.args(arg).as_slice() {
            [delim, s] => match (delim.text(), s.text()) {
                (Some(d), Some(s)) if !d.is_empty() => Val::List(
                    s.split(d.as_str())
                        .map(|p| Val::Str(p.to_owned()))
                        .collect(),
                ),
                _ => Val::Unresolved("Fn::Split needs a delimiter and a string".to_owned()),
            },
            _ => Val::Unresolved("Fn::Split takes [delimiter, string]".to_owned()),
        }
    }

    fn find_in_map(&self, arg: &Node) -> Val {
        let args = self.args(arg);
        let keys: Option<Vec<String>> = args.iter().map(Val::text).collect();
        let Some([map, top, second]) = keys.as_deref() else {
            return Val::Unresolved("Fn::FindInMap takes [map, key, key] as text".to_owned());
        };
        match self
            .mappings
            .and_then(|m| m.get(map))
            .and_then(|m| m.get(top))
            .and_then(|m| m.get(second))
        {
            Some(node) => self.eval(node),
            None => Val::Unresolved(format!(
                "Fn::FindInMap: no {map}.{top}.{second} in Mappings"
            )),
        }
    }

    fn if_(&self, arg: &Node) -> Val {
        let items = arg.items();
        let [cond, yes, no] = items else {
            return Val::Unresolved(
                "Fn::If takes [condition, value if true, value if false]".to_owned(),
            );
        };
        let Some(name) = self.eval(cond).text() else {
            return Val::Unresolved("Fn::If needs a condition's name".to_owned());
        };
        match self.condition(&name) {
            Ok(true) => self.eval(yes),
            Ok(false) => self.eval(no),
            Err(why) => Val::Unresolved(format!("Fn::If {name}: {why}")),
        }
    }

    fn equals(&self, arg: &Node) -> Val {
        match self.args(arg).as_slice() {
            [a, b] => match (a.text(), b.text()) {
                (Some(a), Some(b)) => Val::Bool(a == b),
                _ if a == b => Val::Bool(true),
                _ => Val::Unresolved(format!(
                    "Fn::Equals: {}",
                    if a.text().is_none() { a } else { b }.why_not("a value")
                )),
            },
            _ => Val::Unresolved("Fn::Equals takes two values".to_owned()),
        }
    }

    fn and_or(&self, and: bool, arg: &Node) -> Val {
        let mut result = and;
        for v in self.args(arg) {
            match v.bool() {
                Some(b) if and => result &= b,
                Some(b) => result |= b,
                None => return Val::Unresolved(v.why_not("true or false")),
            }
        }
        Val::Bool(result)
    }
}

/// `Fn::Cidr`: the first `count` blocks with `bits` host bits, in order, inside `block`.
pub fn cidr_split(block: &str, count: i64, bits: i64) -> Result<Vec<Ipv4Net>, String> {
    let net: Ipv4Net = block
        .parse()
        .map_err(|_| format!("'{block}' is not an IPv4 CIDR block"))?;
    let host_bits = u8::try_from(bits)
        .ok()
        .filter(|b| (1..=32 - net.prefix_len()).contains(b))
        .ok_or_else(|| format!("cidrBits must be 1..={}", 32 - net.prefix_len()))?;
    let count = usize::try_from(count)
        .ok()
        .filter(|c| (1..=256).contains(c))
        .ok_or("count must be 1..=256")?;
    let prefix = 32 - host_bits;
    let nets: Vec<Ipv4Net> = net
        .trunc()
        .subnets(prefix)
        .map_err(|e| e.to_string())?
        .take(count)
        .collect();
    if nets.len() < count {
        return Err(format!(
            "{net} holds only {} blocks of /{prefix}",
            nets.len()
        ));
    }
    Ok(nets)
}

/// Evaluates a template parameter's value from its declaration and the `--parameter` given:
/// lists (`List<...>`, `CommaDelimitedList`) are split on commas.
pub fn parameter_value(declaration: &Node, given: Option<&str>) -> Val {
    let kind = declaration
        .get("Type")
        .and_then(Node::as_str)
        .unwrap_or("String");
    let text = match given {
        Some(g) => Some(g.to_owned()),
        None => match declaration.get("Default").map(|d| &d.value) {
            Some(Value::Str(s)) => Some(s.clone()),
            Some(Value::Int(i)) => Some(i.to_string()),
            Some(Value::Float(f)) => Some(f.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Seq(items)) => Some(
                items
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        },
    };
    let Some(text) = text else {
        return Val::Unresolved(
            "the parameter has no Default: give it with --parameter NAME=VALUE".to_owned(),
        );
    };
    if kind.starts_with("List<") || kind == "CommaDelimitedList" {
        Val::List(
            text.split(',')
                .map(|s| Val::Str(s.trim().to_owned()))
                .collect(),
        )
    } else {
        Val::Str(text)
    }
}

/// The names of the parameters a template declares, with pseudo parameters.
pub fn known_parameters(parameters: Option<&Node>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = parameters
        .map(|p| p.entries().iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    names.extend(Context::pseudo_parameters().map(str::to_owned));
    names
}

/// Parses an IPv4 address out of a resolved value.
pub fn ipv4(v: &Val) -> Option<Ipv4Addr> {
    v.text()?.parse().ok()
}

/// A template's resources by logical ID: (type, properties).
pub fn resource_table(resources: &Node) -> BTreeMap<String, (String, Option<&Node>)> {
    resources
        .entries()
        .iter()
        .map(|(id, n)| {
            let kind = n
                .get("Type")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_owned();
            (id.clone(), (kind, n.get("Properties")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::node::parse_yaml;

    fn eval_in(template: &str, expr: &str) -> Val {
        let doc = parse_yaml(template).expect("template parses");
        let resources = doc.get("Resources").map(resource_table).unwrap_or_default();
        let parameters = doc
            .get("Parameters")
            .map(|p| {
                p.entries()
                    .iter()
                    .map(|(k, n)| (k.clone(), parameter_value(n, None)))
                    .collect()
            })
            .unwrap_or_default();
        let conditions = doc
            .get("Conditions")
            .map(|c| c.entries().iter().map(|(k, n)| (k.clone(), n)).collect())
            .unwrap_or_default();
        let ctx = Context::new(parameters, doc.get("Mappings"), conditions, resources);
        let expr = parse_yaml(expr).expect("expression parses");
        ctx.eval(&expr)
    }

    const TEMPLATE: &str = r#"
Parameters:
  VpcCIDR: { Type: String, Default: 10.192.0.0/16 }
  Env: { Type: String, Default: prod }
  Zones: { Type: CommaDelimitedList, Default: "a,b" }
  NoDefault: { Type: String }
Mappings:
  SubnetConfig:
    Public: { CIDR: 10.0.0.0/24 }
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition IsProd, !Not [!Condition NotProd]]
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: !Ref VpcCIDR
  Sub1:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref VPC
      CidrBlock: !Select [1, !Cidr [!GetAtt VPC.CidrBlock, 4, 8]]
"#;

    #[test]
    fn functions_resolve_as_cloudformation_does() {
        let s = |v: &str| Val::Str(v.to_owned());
        let cases: &[(&str, Val)] = &[
            ("!Ref VpcCIDR", s("10.192.0.0/16")),
            ("!Ref VPC", Val::Ref("VPC".to_owned())),
            ("{ Ref: AWS::NoValue }", Val::NoValue),
            ("!GetAtt VPC.CidrBlock", s("10.192.0.0/16")),
            ("{ 'Fn::GetAtt': [Sub1, CidrBlock] }", s("10.192.1.0/24")),
            (
                "!GetAtt VPC.DefaultSecurityGroup",
                Val::Att("VPC".into(), "DefaultSecurityGroup".into()),
            ),
            (
                "!Sub '${Env}-vpc ${!Literal} ${AWS::Region}'",
                s("prod-vpc ${Literal} us-east-1"),
            ),
            ("!Sub ['${A}/${Env}', { A: x }]", s("x/prod")),
            ("!Join ['-', [a, !Ref Env, 3]]", s("a-prod-3")),
            ("!Select [0, !GetAZs '']", s("us-east-1a")),
            ("!Select [1, !GetAZs eu-west-1]", s("eu-west-1b")),
            ("!Select [2, !Cidr [10.0.0.0/16, 3, 6]]", s("10.0.0.128/26")),
            ("!Select [1, !Ref Zones]", s("b")),
            ("!Select [1, !Split [',', 'x,y']]", s("y")),
            ("!FindInMap [SubnetConfig, Public, CIDR]", s("10.0.0.0/24")),
            ("!If [IsProd, yes, no]", s("yes")),
            ("!If [NotProd, yes, no]", s("no")),
            ("!Condition Both", Val::Bool(true)),
            ("!Or [!Condition NotProd, !Equals [1, 1]]", Val::Bool(true)),
            ("[a, !Ref AWS::NoValue, b]", Val::List(vec![s("a"), s("b")])),
        ];
        for (expr, want) in cases {
            assert_eq!(&eval_in(TEMPLATE, expr), want, "{expr}");
        }
    }

    #[test]
    fn what_cannot_be_resolved_says_why() {
        let cases = [
            ("!Ref NoDefault", "--parameter"),
            ("!Ref Nothing", "no parameter or resource"),
            ("!ImportValue shared-vpc", "another stack"),
            (
                "!Select [9, !Cidr [10.0.0.0/16, 3, 8]]",
                "out of a list of 3",
            ),
            ("!Cidr [10.0.0.0/28, 4, 8]", "cidrBits"),
            ("!Sub '${VPC}-x'", "known only in AWS"),
            ("!If [Missing, a, b]", "no condition 'Missing'"),
        ];
        for (expr, why) in cases {
            match eval_in(TEMPLATE, expr) {
                Val::Unresolved(reason) => assert!(reason.contains(why), "{expr}: {reason}"),
                other => panic!("{expr}: resolved to {other:?}"),
            }
        }
    }

    #[test]
    fn cidr_split_carves_blocks_in_order() {
        let nets = cidr_split("10.0.0.0/16", 3, 8).unwrap();
        let text: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]);
        assert!(cidr_split("10.0.0.0/30", 8, 1).is_err());
    }
}
