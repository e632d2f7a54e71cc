-- Quarto's book features for pandoc (the Jupyter engine, `jupyter_engine.page_html`): numbered figures,
-- tables and equations, section numbers, @fig-/@tbl-/@eq-/@sec- cross-references across chapters,
-- callouts, content-visible/-hidden, links to .qmd files. Run before --citeproc.
-- Metadata in: bookrender-chapter (absent: unnumbered), -page, -profile, -labels (JSON file of the
-- book's labels: {id: {number, kind, title, href}}), -report (JSON file written: labels, unresolved).
local stringify = pandoc.utils.stringify
local KIND = {fig = "Figure", tbl = "Table", eq = "Equation", sec = "Section", chapter = "Chapter"}
local CALLOUT = {note = "Note", tip = "Tip", warning = "Warning", caution = "Caution", important = "Important"}
local chapter, page, profile, report, labels = nil, "", "", nil, {}
local count, sections, found, unresolved, cited = {fig = 0, tbl = 0, eq = 0}, {}, {}, {}, false

local function item(kind, id)
  count[kind] = count[kind] + 1
  local number = chapter and (chapter .. "." .. count[kind]) or tostring(count[kind])
  found[id] = {number = number, kind = kind, title = "", href = "#" .. id}
  return number
end

local function names(list, current)  -- whether a when-/unless- list names the current format or profile
  for w in (list or ""):gmatch("[^,%s]+") do if current[w] then return true end end
  return false
end

local function shown(div)  -- nil: not conditional content; else whether this page shows it
  local visible, hidden = div.classes:includes("content-visible"), div.classes:includes("content-hidden")
  if not (visible or hidden) then return nil end
  local match = true
  for key, current in pairs({format = {html = true, html5 = true}, profile = {[profile] = true}}) do
    local when, unless = div.attributes["when-" .. key], div.attributes["unless-" .. key]
    match = match and (when == nil or names(when, current)) and not names(unless, current)
  end
  return (visible and match) or (hidden and not match)
end

local function callout(div)
  local kind
  for _, c in ipairs(div.classes) do kind = kind or c:match("^callout%-(%w+)$") end
  if not kind then return nil end
  local content, title = div.content, nil
  if div.attributes.title then
    title = pandoc.utils.blocks_to_inlines(pandoc.read(div.attributes.title, "markdown").blocks)
  elseif content[1] and content[1].t == "Header" then
    title = content:remove(1).content  -- a heading opening a callout is its title, not a section
  end
  title = title or {pandoc.Str(CALLOUT[kind] or kind)}
  local head = pandoc.Div(pandoc.Plain(pandoc.Strong(title)), {class = "callout-title"})
  return pandoc.Div({head, pandoc.Div(content, {class = "callout-body"})},
                    pandoc.Attr(div.identifier, {"callout", "callout-" .. kind}))
end

local function caption(long, prefix)  -- "Figure 1.2: " before the caption's text
  if long[1] and long[1].content then
    long[1].content:insert(1, pandoc.Str(prefix .. ": "))
  end
end

local function xref(cit)
  local id = cit.id:sub(1, 1):lower() .. cit.id:sub(2)
  local target = found[id] or labels[id]
  if not target then
    table.insert(unresolved, "@" .. id)
    return pandoc.Strong(pandoc.Str("?@" .. id))
  end
  local section = target.kind == "sec" or target.kind == "chapter"
  local text = target.number ~= "" and target.number or target.title
  if section and not chapter then  -- an unnumbered chapter refers to sections by title, as Quarto does
    text = target.title
  elseif cit.mode ~= "SuppressAuthor" then
    text = KIND[target.kind] .. "\u{a0}" .. text
  end
  return pandoc.Link(text, target.href, "", {class = "quarto-xref"})
end

return {
  {Meta = function(meta)
    chapter = meta["bookrender-chapter"] and stringify(meta["bookrender-chapter"]) or nil
    page, profile = stringify(meta["bookrender-page"] or ""), stringify(meta["bookrender-profile"] or "")
    report = meta["bookrender-report"] and stringify(meta["bookrender-report"])
    if meta["bookrender-labels"] then
      local f = assert(io.open(stringify(meta["bookrender-labels"]), "r"))
      labels = pandoc.json.decode(f:read("a"), false)
      f:close()
    end
  end},
  {Div = function(div)
    local show = shown(div)
    if show == nil then return callout(div) end
    return show and div.content or {}
  end},
  {traverse = "topdown",
   Header = function(h)
     local number = ""
     if chapter and not h.classes:includes("unnumbered") then
       sections[1] = sections[1] or tonumber(chapter) - 1  -- pandoc's --number-offset
       for i = 2, h.level do sections[i] = sections[i] or 0 end
       sections[h.level] = sections[h.level] + 1
       for i = h.level + 1, #sections do sections[i] = nil end
       number = table.concat(sections, ".", 1, h.level)
     end
     if h.identifier ~= "" then
       local title = (h.level == 1 and number ~= "") and (number .. "\u{a0} ") or ""
       found[h.identifier] = {number = number, kind = h.level == 1 and "chapter" or "sec",
                              title = title .. stringify(h.content), href = "#" .. h.identifier}
     end
   end,
   Figure = function(fig)
     if not fig.identifier:match("^fig%-") then return nil end
     caption(fig.caption.long, "Figure\u{a0}" .. item("fig", fig.identifier))
     return fig:walk {Image = function(img)
       img.attributes.alt = img.attributes["fig-alt"] or stringify(img.caption)
       img.attributes["fig-alt"] = nil
       return img
     end}
   end,
   Div = function(div)  -- Quarto's ::: {#fig-x} and {#tbl-x} blocks: their last paragraph is the caption
     local kind, last = div.identifier:match("^(%a+)%-"), div.content[#div.content]
     if (kind == "fig" or kind == "tbl") and last and last.t == "Para" then
       last.content:insert(1, pandoc.Str(KIND[kind] .. "\u{a0}" .. item(kind, div.identifier) .. ": "))
       return div
     end
   end,
   Table = function(tbl)
     if tbl.identifier:match("^tbl%-") then caption(tbl.caption.long, "Table\u{a0}" .. item("tbl", tbl.identifier)) end
     return tbl
   end,
   Inlines = function(inlines)  -- $$ ... $$ {#eq-label}: numbered "(2.1)" on its right, as Quarto does
     local i = 1
     while i <= #inlines do
       local el, j = inlines[i], i + 1
       if el.t == "Math" and el.mathtype == "DisplayMath" then
         while inlines[j] and (inlines[j].t == "Space" or inlines[j].t == "SoftBreak") do j = j + 1 end
         local id = inlines[j] and inlines[j].t == "Str" and inlines[j].text:match("^{#(eq%-[^}%s]+)}$")
         if id then
           local number = item("eq", id)
           for _ = i + 1, j do inlines:remove(i + 1) end
           inlines[i] = pandoc.Span(pandoc.Math("DisplayMath", el.text .. " \\qquad(" .. number .. ")"), {id = id})
         end
       end
       i = i + 1
     end
     return inlines
   end},
  {Cite = function(cite)
    for _, cit in ipairs(cite.citations) do
      local kind = cit.id:match("^(%a+)%-")
      if not (kind and KIND[kind:lower()] and kind:lower() ~= "chapter") then cited = true; return nil end
    end
    local out = pandoc.Inlines {}
    for k, cit in ipairs(cite.citations) do
      if k > 1 then out:extend {pandoc.Str(","), pandoc.Space()} end
      if #cit.prefix > 0 then out:extend(cit.prefix); out:insert(pandoc.Space()) end
      out:insert(xref(cit))
      out:extend(cit.suffix)
    end
    return out
  end,
   Link = function(link)
     local path, rest = link.target:match("^([^#]*)%.qmd(.*)$")
     if path and not path:match("^%a[%w+.-]*:") then link.target = path .. ".html" .. rest end
     return link
   end,
   Pandoc = function(doc)
     if cited then
       doc.blocks:insert(pandoc.Header(2, "References", {id = "references", class = "unnumbered"}))
       doc.blocks:insert(pandoc.Div({}, {id = "refs"}))
     end
     if report then
       local f = assert(io.open(report, "w"))
       f:write(pandoc.json.encode({labels = found, unresolved = unresolved}))
       f:close()
     end
     return doc
   end},
}
