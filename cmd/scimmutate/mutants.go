package main

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"strings"
)

// The mutation operators. Each changes one token or expression of a non-test file.
const (
	// opBoundary moves a comparison's boundary: < ↔ <=, > ↔ >=.
	opBoundary = "CONDITIONALS_BOUNDARY"
	// opNegation inverts a comparison: == ↔ !=, < ↔ >=, > ↔ <=.
	opNegation = "CONDITIONALS_NEGATION"
	// opLogical swaps the logical operators: && ↔ ||.
	opLogical = "LOGICAL"
	// opNegationRemoval drops a logical not: !x → x.
	opNegationRemoval = "NEGATION_REMOVAL"
	// opArithmetic swaps + ↔ - and * ↔ / on numbers, also in +=, -=, *=, /=.
	opArithmetic = "ARITHMETIC"
	// opIncDec swaps ++ ↔ --.
	opIncDec = "INCREMENT_DECREMENT"
	// opBoolean flips a boolean literal in an expression: true ↔ false.
	opBoolean = "BOOLEAN_FLIP"
	// opErrorIgnored turns the condition of `if err != nil` (err of a type that
	// implements error) into false: the error is ignored.
	opErrorIgnored = "ERROR_IGNORED"
	// opOffByOne replaces an integer constant N compared with something else by N+1:
	// a literal in any comparison, a named constant in <, <=, > and >=.
	opOffByOne = "OFF_BY_ONE"
)

// Mutant is one candidate change. ID is stable while the file's lines do not move;
// the equivalent list matches by File, Func, Operator, Original and Mutated instead.
type Mutant struct {
	ID       string `json:"id"`
	Pkg      string `json:"pkg"`
	File     string `json:"file"` // relative to the module root, slash-separated
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Func     string `json:"func"`
	Operator string `json:"operator"`
	Original string `json:"original"` // the expression or statement around the change
	Mutated  string `json:"mutated"`  // the same text after the change
	// CoverLine and CoverCol locate the code whose coverage decides which tests run
	// (the mutant itself, or the switch statement for a mutant in a case expression).
	CoverLine int `json:"-"`
	CoverCol  int `json:"-"`
	// Start, End and Repl are the byte range of the file that the change replaces.
	Start int    `json:"-"`
	End   int    `json:"-"`
	Repl  string `json:"-"`
}

// apply returns src with the mutant's change made.
func (m *Mutant) apply(src []byte) []byte {
	out := make([]byte, 0, len(src)+len(m.Repl))
	out = append(out, src[:m.Start]...)
	out = append(out, m.Repl...)
	return append(out, src[m.End:]...)
}

// fileInput is one parsed non-test file of a target package.
type fileInput struct {
	pkg  string // import path
	rel  string // path relative to the module root
	src  []byte
	file *ast.File
	fset *token.FileSet
	info *types.Info // may be nil or partial when type checking failed
}

// enumerate returns the mutants of one file in source order.
func enumerate(in fileInput) []Mutant {
	if ast.IsGenerated(in.file) {
		return nil
	}
	e := &enumerator{in: in}
	var stack []ast.Node
	ast.Inspect(in.file, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		if g, ok := n.(*ast.GenDecl); ok && g.Tok == token.CONST {
			return false // a changed constant may not compile (array sizes, overflow)
		}
		if a, ok := n.(*ast.ArrayType); ok && a.Len != nil {
			return false // an array length must stay constant
		}
		e.visit(n, stack)
		stack = append(stack, n)
		return true
	})
	return e.out
}

type enumerator struct {
	in  fileInput
	out []Mutant
}

func (e *enumerator) off(p token.Pos) int { return e.in.fset.Position(p).Offset }

func (e *enumerator) text(n ast.Node) string {
	return string(e.in.src[e.off(n.Pos()):e.off(n.End())])
}

func (e *enumerator) typeOf(x ast.Expr) types.Type {
	if e.in.info == nil {
		return nil
	}
	return e.in.info.TypeOf(x)
}

// numeric reports whether x is known to be a number (not a string); unknown types
// count as numbers only when the expression is not a string literal.
func (e *enumerator) numeric(x ast.Expr) bool {
	t := e.typeOf(x)
	if t == nil {
		lit, ok := x.(*ast.BasicLit)
		return !ok || lit.Kind != token.STRING
	}
	b, ok := t.Underlying().(*types.Basic)
	return ok && b.Info()&types.IsNumeric != 0
}

func (e *enumerator) intConst(x ast.Expr) (constant.Value, bool) {
	if lit, ok := x.(*ast.BasicLit); ok && lit.Kind == token.INT {
		v := constant.MakeFromLiteral(lit.Value, token.INT, 0)
		return v, v.Kind() == constant.Int
	}
	if e.in.info == nil {
		return nil, false
	}
	switch x.(type) {
	case *ast.Ident, *ast.SelectorExpr:
	default:
		return nil, false
	}
	tv, ok := e.in.info.Types[x]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.Int {
		return nil, false
	}
	return tv.Value, true
}

func (e *enumerator) isConst(x ast.Expr) bool {
	if e.in.info == nil {
		_, ok := x.(*ast.BasicLit)
		return ok
	}
	tv, ok := e.in.info.Types[x]
	return ok && tv.Value != nil
}

var errorIface = types.Universe.Lookup("error").Type().Underlying().(*types.Interface)

func (e *enumerator) isError(x ast.Expr) bool {
	if t := e.typeOf(x); t != nil {
		return types.Implements(t, errorIface)
	}
	id, ok := x.(*ast.Ident)
	return ok && (id.Name == "err" || strings.HasSuffix(id.Name, "Err"))
}

func (e *enumerator) isUniverseBool(id *ast.Ident) bool {
	if id.Name != "true" && id.Name != "false" {
		return false
	}
	if e.in.info == nil {
		return true
	}
	obj := e.in.info.Uses[id]
	return obj == nil || obj.Parent() == types.Universe
}

var (
	boundary = map[token.Token]token.Token{token.LSS: token.LEQ, token.LEQ: token.LSS, token.GTR: token.GEQ, token.GEQ: token.GTR}
	negation = map[token.Token]token.Token{token.EQL: token.NEQ, token.NEQ: token.EQL, token.LSS: token.GEQ, token.GEQ: token.LSS, token.GTR: token.LEQ, token.LEQ: token.GTR}
	logical  = map[token.Token]token.Token{token.LAND: token.LOR, token.LOR: token.LAND}
	arith    = map[token.Token]token.Token{token.ADD: token.SUB, token.SUB: token.ADD, token.MUL: token.QUO, token.QUO: token.MUL,
		token.ADD_ASSIGN: token.SUB_ASSIGN, token.SUB_ASSIGN: token.ADD_ASSIGN, token.MUL_ASSIGN: token.QUO_ASSIGN, token.QUO_ASSIGN: token.MUL_ASSIGN}
	incdec = map[token.Token]token.Token{token.INC: token.DEC, token.DEC: token.INC}
)

func isComparison(t token.Token) bool { _, ok := negation[t]; return ok }

func (e *enumerator) visit(n ast.Node, stack []ast.Node) {
	switch n := n.(type) {
	case *ast.BinaryExpr:
		if to, ok := boundary[n.Op]; ok {
			e.token(n, stack, n.OpPos, n.Op, to, opBoundary)
		}
		if to, ok := negation[n.Op]; ok {
			e.token(n, stack, n.OpPos, n.Op, to, opNegation)
		}
		if to, ok := logical[n.Op]; ok {
			e.token(n, stack, n.OpPos, n.Op, to, opLogical)
		}
		if to, ok := arith[n.Op]; ok && e.numeric(n.X) && e.numeric(n.Y) && !e.isConst(n) {
			e.token(n, stack, n.OpPos, n.Op, to, opArithmetic)
		}
		if isComparison(n.Op) && !(e.isConst(n.X) && e.isConst(n.Y)) {
			for _, side := range []ast.Expr{n.X, n.Y} {
				if v, ok := e.intConst(side); ok {
					repl := constant.BinaryOp(v, token.ADD, constant.MakeInt64(1)).ExactString()
					if _, lit := side.(*ast.BasicLit); !lit {
						if n.Op == token.EQL || n.Op == token.NEQ {
							continue // a named constant compared for equality is an enum value, not a bound
						}
						repl = "(" + e.text(side) + " + 1)"
					}
					e.add(n, stack, side.Pos(), side.End(), repl, opOffByOne)
				}
			}
		}
	case *ast.UnaryExpr:
		if n.Op == token.NOT {
			e.add(n, stack, n.OpPos, n.OpPos+1, "", opNegationRemoval)
		}
	case *ast.IncDecStmt:
		e.token(n, stack, n.TokPos, n.Tok, incdec[n.Tok], opIncDec)
	case *ast.AssignStmt:
		if to, ok := arith[n.Tok]; ok && len(n.Lhs) == 1 && e.numeric(n.Lhs[0]) {
			e.token(n, stack, n.TokPos, n.Tok, to, opArithmetic)
		}
	case *ast.Ident:
		if e.isUniverseBool(n) && len(stack) > 0 && !isDeclName(n, stack[len(stack)-1]) {
			repl := "false"
			if n.Name == "false" {
				repl = "true"
			}
			ctx := ast.Node(n)
			if p, ok := stack[len(stack)-1].(ast.Expr); ok && e.oneLine(p) {
				ctx = p
			} else if p, ok := stack[len(stack)-1].(ast.Stmt); ok && e.oneLine(p) {
				ctx = p
			}
			e.add(ctx, stack, n.Pos(), n.End(), repl, opBoolean)
		}
	case *ast.IfStmt:
		c, ok := n.Cond.(*ast.BinaryExpr)
		if !ok || c.Op != token.NEQ {
			return
		}
		if y, ok := c.Y.(*ast.Ident); ok && y.Name == "nil" && e.isError(c.X) {
			// The condition stays evaluated so that err stays used and the file compiles.
			m := e.mutant(c, append(stack, n), c.Pos(), c.End(), e.text(c)+" && false", opErrorIgnored)
			m.Mutated = "false"
			e.out = append(e.out, m)
		}
	}
}

func isDeclName(id *ast.Ident, parent ast.Node) bool {
	switch p := parent.(type) {
	case *ast.ValueSpec:
		for _, n := range p.Names {
			if n == id {
				return true
			}
		}
	case *ast.Field:
		for _, n := range p.Names {
			if n == id {
				return true
			}
		}
	}
	return false
}

func (e *enumerator) oneLine(n ast.Node) bool {
	f := e.in.fset
	return f.Position(n.Pos()).Line == f.Position(n.End()).Line && n.End()-n.Pos() <= 160
}

func (e *enumerator) token(ctx ast.Node, stack []ast.Node, pos token.Pos, from, to token.Token, op string) {
	e.add(ctx, stack, pos, pos+token.Pos(len(from.String())), to.String(), op)
}

func (e *enumerator) add(ctx ast.Node, stack []ast.Node, start, end token.Pos, repl, op string) {
	e.out = append(e.out, e.mutant(ctx, stack, start, end, repl, op))
}

// mutant builds the mutant replacing [start, end) by repl; ctx is the node whose
// text, before and after the change, identifies the mutant in reports.
func (e *enumerator) mutant(ctx ast.Node, stack []ast.Node, start, end token.Pos, repl, op string) Mutant {
	p := e.in.fset.Position(start)
	so, eo := e.off(start), e.off(end)
	co, ce := e.off(ctx.Pos()), e.off(ctx.End())
	orig := string(e.in.src[co:ce])
	mut := string(e.in.src[co:so]) + repl + string(e.in.src[eo:ce])
	cover := coverPos(stack, start)
	cp := e.in.fset.Position(cover)
	return Mutant{
		ID:        fmt.Sprintf("%s:%d:%d:%s", e.in.rel, p.Line, p.Column, op),
		Pkg:       e.in.pkg,
		File:      e.in.rel,
		Line:      p.Line,
		Col:       p.Column,
		Func:      funcName(stack),
		Operator:  op,
		Original:  squeeze(orig),
		Mutated:   squeeze(mut),
		CoverLine: cp.Line,
		CoverCol:  cp.Column,
		Start:     so,
		End:       eo,
		Repl:      repl,
	}
}

// coverPos is the position whose coverage block decides which tests reach pos. The
// coverage tool leaves the case expressions of a switch or select outside every
// block, so a mutant there is located at its switch statement.
func coverPos(stack []ast.Node, pos token.Pos) token.Pos {
	for i := len(stack) - 1; i > 0; i-- {
		var list []ast.Expr
		switch c := stack[i].(type) {
		case *ast.CaseClause:
			list = c.List
		case *ast.CommClause:
			if c.Comm != nil && pos >= c.Comm.Pos() && pos < c.Comm.End() {
				return outerStmt(stack[:i])
			}
		case *ast.FuncLit, *ast.BlockStmt:
			return pos
		}
		for _, x := range list {
			if pos >= x.Pos() && pos < x.End() {
				return outerStmt(stack[:i])
			}
		}
	}
	return pos
}

func outerStmt(stack []ast.Node) token.Pos {
	for i := len(stack) - 1; i >= 0; i-- {
		switch s := stack[i].(type) {
		case *ast.SwitchStmt, *ast.TypeSwitchStmt, *ast.SelectStmt:
			return s.Pos()
		}
	}
	return token.NoPos
}

// funcName names the function declaration around the mutant: Func, Type.Method, or
// the package-level declaration's first name.
func funcName(stack []ast.Node) string {
	for _, n := range stack {
		switch d := n.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil || len(d.Recv.List) == 0 {
				return d.Name.Name
			}
			return recvName(d.Recv.List[0].Type) + "." + d.Name.Name
		case *ast.ValueSpec:
			if len(d.Names) > 0 {
				return d.Names[0].Name
			}
		}
	}
	return "package"
}

func recvName(x ast.Expr) string {
	switch t := x.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr:
		return recvName(t.X)
	case *ast.IndexListExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

// squeeze collapses every run of white space to one space.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
