// Click a header to sort its column: numbers as numbers (units s/min/h), missing (—) last.
// Headers marked nosort (values not comparable between rows) do not sort.
(function(){
  var UNIT={s:1,min:60,h:3600};
  function key(text){
    var t=text.trim().replace(/\u2212/g,"-");
    if(t===""||t==="\u2014")return null;
    var m=t.match(/^\[?([+-]?\d+(?:\.\d+)?)(?:\s*(s|min|h)\b)?/);
    if(m)return parseFloat(m[1])*(m[2]?UNIT[m[2]]:1);
    return t.toLowerCase();
  }
  function cmp(a,b){
    if(typeof a===typeof b)return a<b?-1:a>b?1:0;
    return typeof a==="number"?-1:1;
  }
  document.querySelectorAll("table.sortable th:not(.nosort)").forEach(function(th){
    th.addEventListener("click",function(){
      var table=th.closest("table"),body=table.tBodies[0],col=th.cellIndex;
      var dir=th.getAttribute("aria-sort")==="ascending"?-1:1;
      table.querySelectorAll("th").forEach(function(h){h.removeAttribute("aria-sort")});
      th.setAttribute("aria-sort",dir===1?"ascending":"descending");
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(r1,r2){
        var a=key(r1.cells[col].textContent),b=key(r2.cells[col].textContent);
        if(a===null||b===null)return (a===null)-(b===null);  // missing last either way
        return dir*cmp(a,b);
      });
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
})();
