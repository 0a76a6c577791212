-- pandoc Lua filter for hacking/docs.sh, which turns the Markdown guides docs/*.md into the RST
-- extra docs of the collection's docsite:
-- * a link to another guide (`foo.md`, `foo.md#part`) becomes a Sphinx :ref: to that guide's label,
--   so a link to a guide that is not on the site fails the build; a link to any other file of the
--   repository (not on the site) is kept as its text; links with a scheme (https:) are left alone;
-- * an image of the repository (the usage report's screenshot) is not copied to the site: its description is kept;
-- * a fence without a language is plain text (Sphinx would highlight it as YAML+Jinja, and warn);
-- * a word with RST markup characters (_ * ` |) has them all escaped: pandoc 2.17 escapes `foo_ `
--   and ` *x` but not `[0-9_.-]` or `'*x'`, which RST reads as a reference and as emphasis.
local prefix = "ansible_collections.regops.registry.docsite."

local function escape(text, chars)
  return (text:gsub("([" .. chars .. "])", "\\%1"))
end

local function link(el)
  local target = el.target
  if target:match("^%a[%w+.-]*:") then
    return nil
  end
  local name = target:match("^([%w_-]+)%.md$") or target:match("^([%w_-]+)%.md#")
  if name then
    local text = escape(pandoc.utils.stringify(el.content), "\\`<>")
    local label = prefix .. (name:gsub("-", "_"))
    return pandoc.RawInline("rst", ":ref:`" .. text .. " <" .. label .. ">`")
  end
  io.stderr:write("docs: link to " .. target .. " is not on the docsite, kept as text\n")
  return el.content
end

local function image(el)
  if el.src:match("^%a[%w+.-]*:") then
    return nil
  end
  io.stderr:write("docs: image " .. el.src .. " is not on the docsite, kept as its description\n")
  return el.caption
end

local function code_block(el)
  if #el.classes == 0 then
    el.classes = { "text" }
    return el
  end
end

local function str(el)
  if el.text:find("[_*`|]") then
    return pandoc.RawInline("rst", escape(el.text, "\\*`|_"))
  end
end

-- Links first, while their text is still plain Str elements.
return {
  { Link = link, Image = image, CodeBlock = code_block },
  { Str = str },
}
