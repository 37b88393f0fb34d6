#!/usr/bin/env python3
"""Lists a crate's public API from rustdoc's JSON output, one item per line, sorted.

    RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Z unstable-options --output-format json" \\
        cargo doc -p CRATE --no-deps --all-features
    scripts/public-api.py target/doc/CRATE.json > api/CRATE.txt

The listing names every public item reachable from the crate root (through modules and
re-exports) with its signature: functions and methods with their parameters and return
type, struct fields, enum variants, trait items, constants, and the traits each public
type implements (blanket and auto-trait implementations left out). A change to the public
surface therefore shows up as a changed line in review.
"""
import json
import sys


def main(path):
    doc = json.load(open(path, encoding="utf-8"))
    index = doc["index"]
    paths = doc["paths"]
    lines = set()
    seen = set()

    def name_of(id_, fallback):
        p = paths.get(str(id_))
        return "::".join(p["path"]) if p else fallback

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
        return p["path"] + generic_args(p.get("args"))

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

    def visible(item):
        return item.get("visibility") == "public"

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
                if trait["path"] in ("StructuralPartialEq",):
                    continue
                neg = "!" if im.get("is_negative") else ""
                lines.add(f"impl{generics(im.get('generics'))} {neg}{path_ty(trait)} for {type_path}")
                continue
            for item_id in im["items"]:
                item = index.get(str(item_id))
                if not item or not visible(item):
                    continue
                inner = item["inner"]
                if "function" in inner:
                    lines.add(f"pub {signature(type_path + '::' + item['name'], inner['function'])}")
                elif "assoc_const" in inner:
                    lines.add(f"pub const {type_path}::{item['name']}: {ty(inner['assoc_const']['type'])}")

    def emit(item, path):
        inner = item["inner"]
        kind = next(iter(inner))
        full = f"{path}::{item['name']}"
        body = inner[kind]
        attrs = " ".join(a for a in item.get("attrs", []) if "non_exhaustive" in str(a))
        attrs = "#[non_exhaustive] " if attrs else ""
        if kind == "struct":
            lines.add(f"{attrs}pub struct {full}{generics(body['generics'])}")
            k = body["kind"]
            fields = k.get("plain", {}).get("fields", []) if isinstance(k, dict) else []
            if isinstance(k, dict) and "tuple" in k:
                fields = [f for f in k["tuple"] if f is not None]
            for fid in fields:
                f = index.get(str(fid))
                if f and visible(f):
                    lines.add(f"pub {full}::{f['name']}: {ty(f['inner']['struct_field'])}")
            emit_impls(full, body["impls"])
        elif kind == "enum":
            lines.add(f"{attrs}pub enum {full}{generics(body['generics'])}")
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
            lines.add(f"pub trait {full}{generics(body['generics'])}" + (": " + sup if sup else ""))
            for tid in body["items"]:
                t = index.get(str(tid))
                if not t:
                    continue
                ti = t["inner"]
                if "function" in ti:
                    lines.add(f"{full}::{signature(t['name'], ti['function'])}")
                elif "assoc_type" in ti:
                    lines.add(f"{full}::type {t['name']}")
        elif kind == "function":
            lines.add(f"pub {signature(full, body)}")
        elif kind == "constant":
            lines.add(f"pub const {full}: {ty(body['type'])}")
        elif kind == "type_alias":
            lines.add(f"pub type {full} = {ty(body['type'])}")
        elif kind == "static":
            lines.add(f"pub static {full}: {ty(body['type'])}")
        elif kind == "macro":
            lines.add(f"macro {full}!")

    def walk(mod_id, path):
        if (mod_id, path) in seen:
            return
        seen.add((mod_id, path))
        for item_id in index[str(mod_id)]["inner"]["module"]["items"]:
            item = index.get(str(item_id))
            if not item or not visible(item):
                continue
            inner = item["inner"]
            if "module" in inner:
                lines.add(f"pub mod {path}::{item['name']}")
                walk(item_id, f"{path}::{item['name']}")
            elif "use" in inner:
                u = inner["use"]
                target = index.get(str(u["id"])) if u.get("id") is not None else None
                if target is None:
                    lines.add(f"pub use {path}::{u['name']} = {u['source']}")
                elif "module" in target["inner"]:
                    walk(u["id"], f"{path}::{u['name']}")
                else:
                    renamed = dict(target, name=u["name"])
                    emit(renamed, path)
            else:
                emit(item, path)

    crate = index[str(doc["root"])]["name"]
    walk(doc["root"], crate)
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
