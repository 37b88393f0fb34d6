#!/usr/bin/env python3
"""Lists a crate's public API from rustdoc's JSON output, one item per line, sorted.

    RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Z unstable-options --output-format json \\
        --document-hidden-items" cargo doc -p CRATE --no-deps --all-features
    scripts/public-api.py target/doc/CRATE.json > api/CRATE.txt

The listing names every public item reachable from the crate root (through modules and
re-exports) with its signature: functions and methods with their parameters and return
type, struct fields, enum variants, trait items, constants, and the traits each public
type implements (blanket and auto-trait implementations left out). Items hidden from the
documentation (`#[doc(hidden)]`) are listed too, marked `#[doc(hidden)]`: they are callable,
so they are part of the surface that semver covers.

Each item is listed once, under its canonical path (the shortest public one, then the
first in alphabetical order); every other path it is re-exported under is a `pub use` line.
Types in signatures are written with their canonical public path when they are this
crate's, so moving an item between private modules changes nothing here.
"""
import json
import sys


def main(path):
    doc = json.load(open(path, encoding="utf-8"))
    index = doc["index"]
    paths = doc["paths"]
    crate = index[str(doc["root"])]["name"]
    lines = set()

    def visible(item):
        return item.get("visibility") == "public"

    # Pass 1: every public path of every item reachable from the root.
    found = {}  # item id -> set of (parent module path, name)
    modules_seen = set()

    def collect(mod_id, path):
        if (mod_id, path) in modules_seen:
            return
        modules_seen.add((mod_id, path))
        for item_id in index[str(mod_id)]["inner"]["module"]["items"]:
            item = index.get(str(item_id))
            if not item or not visible(item):
                continue
            inner = item["inner"]
            if "module" in inner:
                lines.add(f"pub mod {path}::{item['name']}{hidden(item)}")
                collect(item_id, f"{path}::{item['name']}")
            elif "use" in inner:
                u = inner["use"]
                target = index.get(str(u["id"])) if u.get("id") is not None else None
                if target is None:
                    lines.add(f"pub use {path}::{u['name']} = {u['source']}")
                elif "module" in target["inner"]:
                    collect(u["id"], f"{path}::{u['name']}")
                else:
                    found.setdefault(u["id"], set()).add((path, u["name"]))
            else:
                found.setdefault(item_id, set()).add((path, item["name"]))

    def hidden(item):
        return " #[doc(hidden)]" if any("hidden" in str(a) for a in item.get("attrs", [])) else ""

    collect(doc["root"], crate)
    canonical = {}
    for item_id, where in found.items():
        ordered = sorted(where, key=lambda pn: (pn[0].count("::"), pn[0], pn[1]))
        canonical[item_id] = f"{ordered[0][0]}::{ordered[0][1]}"

    def name_of(id_, written):
        if id_ is not None and id_ in canonical:
            return canonical[id_]
        if written.startswith("$crate::"):
            return written.rsplit("::", 1)[-1]
        return written

    def generic_args(args):
        if not args:
            return ""
        if "angle_bracketed" in args:
            parts = []
            for a in args["angle_bracketed"]["args"]:
                if "type" in a:
                    parts.append(ty(a["type"]))
                elif "lifetime" in a:
                    parts.append(a["lifetime"])
                elif "const" in a:
                    parts.append(str(a["const"].get("expr", "_")))
            for c in args["angle_bracketed"].get("constraints", []):
                binding = c.get("binding", {})
                if "equality" in binding:
                    parts.append(f"{c['name']} = {term(binding['equality'])}")
                elif "constraint" in binding:
                    parts.append(f"{c['name']}: {bounds(binding['constraint'])}")
            return "<" + ", ".join(parts) + ">" if parts else ""
        if "parenthesized" in args:
            p = args["parenthesized"]
            out = "(" + ", ".join(ty(t) for t in p["inputs"]) + ")"
            if p.get("output"):
                out += " -> " + ty(p["output"])
            return out
        return ""

    def term(t):
        return ty(t["type"]) if "type" in t else str(t.get("constant", "_"))

    def path_ty(p):
        return name_of(p.get("id"), p["path"]) + generic_args(p.get("args"))

    def bounds(bs):
        out = []
        for b in bs:
            if "trait_bound" in b:
                tb = b["trait_bound"]
                prefix = "?" if tb.get("modifier") == "maybe" else ""
                hrtb = ""
                if tb.get("generic_params"):
                    hrtb = "for<" + ", ".join(g["name"] for g in tb["generic_params"]) + "> "
                out.append(prefix + hrtb + path_ty(tb["trait"]))
            elif "outlives" in b:
                out.append(b["outlives"])
            elif "use" in b:
                out.append("use<" + ", ".join(str(x) for x in b["use"]) + ">")
        return " + ".join(out)

    def ty(t):
        if t is None:
            return "()"
        k, v = next(iter(t.items()))
        if k == "resolved_path":
            return path_ty(v)
        if k == "primitive":
            return v
        if k == "generic":
            return v
        if k == "borrowed_ref":
            lt = (v["lifetime"] + " ") if v.get("lifetime") else ""
            return "&" + lt + ("mut " if v["is_mutable"] else "") + ty(v["type"])
        if k == "tuple":
            return "(" + ", ".join(ty(x) for x in v) + ")"
        if k == "slice":
            return "[" + ty(v) + "]"
        if k == "array":
            return "[" + ty(v["type"]) + "; " + str(v["len"]) + "]"
        if k == "impl_trait":
            return "impl " + bounds(v)
        if k == "dyn_trait":
            parts = [path_ty(tr["trait"]) for tr in v["traits"]]
            if v.get("lifetime"):
                parts.append(v["lifetime"])
            return "dyn " + " + ".join(parts)
        if k == "qualified_path":
            trait = path_ty(v["trait"]) if v.get("trait") else ""
            return f"<{ty(v['self_type'])} as {trait}>::{v['name']}" if trait else f"{ty(v['self_type'])}::{v['name']}"
        if k == "raw_pointer":
            return "*" + ("mut " if v["is_mutable"] else "const ") + ty(v["type"])
        if k == "function_pointer":
            sig = v["sig"]
            return "fn(" + ", ".join(ty(i[1]) for i in sig["inputs"]) + ")" + (" -> " + ty(sig["output"]) if sig.get("output") else "")
        if k == "infer":
            return "_"
        return k

    def generics(g):
        if not g:
            return ""
        params = []
        for p in g["params"]:
            kind = p["kind"]
            if "lifetime" in kind:
                params.append(p["name"])
            elif "type" in kind:
                if kind["type"].get("is_synthetic"):
                    continue
                b = bounds(kind["type"].get("bounds", []))
                params.append(p["name"] + (": " + b if b else ""))
            elif "const" in kind:
                params.append(f"const {p['name']}: {ty(kind['const']['type'])}")
        return "<" + ", ".join(params) + ">" if params else ""

    def signature(name, f):
        sig = f["sig"]
        args = []
        for arg_name, arg_ty in sig["inputs"]:
            if arg_name == "self":
                rendered = ty(arg_ty)
                if rendered.startswith("&") and rendered.endswith("Self") and rendered.count(" ") <= 2:
                    args.append(rendered[: -len("Self")] + "self")
                else:
                    args.append({"Self": "self"}.get(rendered, "self: " + rendered))
            else:
                args.append(f"{arg_name}: {ty(arg_ty)}")
        out = " -> " + ty(sig["output"]) if sig.get("output") else ""
        head = f["header"]
        prefix = ("const " if head.get("is_const") else "") + ("async " if head.get("is_async") else "") + ("unsafe " if head.get("is_unsafe") else "")
        return f"{prefix}fn {name}{generics(f['generics'])}({', '.join(args)}){out}"

    def emit_impls(type_path, impl_ids):
        for impl_id in impl_ids:
            impl = index.get(str(impl_id))
            if not impl:
                continue
            im = impl["inner"]["impl"]
            if im.get("is_synthetic") or im.get("blanket_impl") is not None:
                continue
            trait = im.get("trait")
            if trait:
                if trait["path"] in ("StructuralPartialEq", "TrivialClone"):
                    continue
                neg = "!" if im.get("is_negative") else ""
                lines.add(f"impl{generics(im.get('generics'))} {neg}{path_ty(trait)} for {ty(im['for'])}")
                continue
            for item_id in im["items"]:
                item = index.get(str(item_id))
                if not item or not visible(item):
                    continue
                inner = item["inner"]
                if "function" in inner:
                    lines.add(f"pub {signature(type_path + '::' + item['name'], inner['function'])}{hidden(item)}")
                elif "assoc_const" in inner:
                    lines.add(f"pub const {type_path}::{item['name']}: {ty(inner['assoc_const']['type'])}{hidden(item)}")

    def emit(item, full):
        inner = item["inner"]
        kind = next(iter(inner))
        body = inner[kind]
        attrs = "#[non_exhaustive] " if any("non_exhaustive" in str(a) for a in item.get("attrs", [])) else ""
        mark = hidden(item)
        if kind == "struct":
            lines.add(f"{attrs}pub struct {full}{generics(body['generics'])}{mark}")
            k = body["kind"]
            fields = k.get("plain", {}).get("fields", []) if isinstance(k, dict) else []
            if isinstance(k, dict) and "tuple" in k:
                fields = [f for f in k["tuple"] if f is not None]
            for fid in fields:
                f = index.get(str(fid))
                if f and visible(f):
                    lines.add(f"pub {full}::{f['name']}: {ty(f['inner']['struct_field'])}{hidden(f)}")
            emit_impls(full, body["impls"])
        elif kind == "enum":
            lines.add(f"{attrs}pub enum {full}{generics(body['generics'])}{mark}")
            for vid in body["variants"]:
                v = index.get(str(vid))
                if v:
                    vk = v["inner"]["variant"]["kind"]
                    shape = ""
                    if isinstance(vk, dict) and "tuple" in vk:
                        shape = "(" + ", ".join(ty(index[str(f)]["inner"]["struct_field"]) for f in vk["tuple"] if f is not None) + ")"
                    elif isinstance(vk, dict) and "struct" in vk:
                        shape = " { " + ", ".join(index[str(f)]["name"] + ": " + ty(index[str(f)]["inner"]["struct_field"]) for f in vk["struct"]["fields"]) + " }"
                    lines.add(f"{full}::{v['name']}{shape}")
            emit_impls(full, body["impls"])
        elif kind == "trait":
            sup = bounds(body.get("bounds", []))
            lines.add(f"pub trait {full}{generics(body['generics'])}" + (": " + sup if sup else "") + mark)
            for tid in body["items"]:
                t = index.get(str(tid))
                if not t:
                    continue
                ti = t["inner"]
                if "function" in ti:
                    lines.add(f"{full}::{signature(t['name'], ti['function'])}{hidden(t)}")
                elif "assoc_type" in ti:
                    lines.add(f"{full}::type {t['name']}{hidden(t)}")
        elif kind == "function":
            lines.add(f"pub {signature(full, body)}{mark}")
        elif kind == "constant":
            lines.add(f"pub const {full}: {ty(body['type'])}{mark}")
        elif kind == "type_alias":
            lines.add(f"pub type {full} = {ty(body['type'])}{mark}")
        elif kind == "static":
            lines.add(f"pub static {full}: {ty(body['type'])}{mark}")
        elif kind == "macro":
            lines.add(f"macro {full}!{mark}")

    # Pass 2: each item once, at its canonical path; its other paths as re-exports.
    for item_id, where in found.items():
        full = canonical[item_id]
        emit(index[str(item_id)], full)
        for parent, name in where:
            if f"{parent}::{name}" != full:
                lines.add(f"pub use {parent}::{name} = {full}")
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
