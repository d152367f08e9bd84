; nnir: verify query 'cap' on network 'tiny'
; Question: is there an input in the network's box whose values satisfy the property?
;   property: y[0] > 0.5
; How to read the answer:
;   sat     = yes, such an input exists (for a property that states a violation, as VNN-LIB properties do:
;             the safety property is violated, a model is a counterexample);
;   unsat   = no input in the box satisfies the property (a VNN-LIB safety property holds);
;   unknown = the solver gave up: no verdict.
; Logic: QF_LRA. Every weight, bias and bound is the exact rational value of the number nnir read
;   (a float at its binary value); one Real per input and per neuron, sound bound facts as hints.
; ReLU encoding: or ((or (and (>= pre 0) (= post pre)) (and (< pre 0) (= post 0)))).
; Witness: after check-sat, (get-value ...) prints the inputs. After unsat there is no model, so the
;   solver reports an error for get-value (z3 prints (error ...) and exits 1); the verdict is the first line.
(set-option :produce-models true)
(set-info :smt-lib-version 2.6)
(set-logic QF_LRA)
; input x[2]
(declare-fun |tiny.x[0]| () Real)
(declare-fun |tiny.x[1]| () Real)
(assert (<= 0.0 |tiny.x[0]|))
(assert (<= |tiny.x[0]| 1.0))
(assert (<= 0.0 |tiny.x[1]|))
(assert (<= |tiny.x[1]| 1.0))
; layer h[2] = relu(W x + b)
(declare-fun |tiny.h.pre[0]| () Real)
(declare-fun |tiny.h.pre[1]| () Real)
(assert (= |tiny.h.pre[0]| (+ |tiny.x[0]| (* (- 1.0) |tiny.x[1]|))))
(assert (= |tiny.h.pre[1]| (+ (* (- 1.0) |tiny.x[0]|) |tiny.x[1]|)))
(assert (<= (- (/ 281474976710657 281474976710656)) |tiny.h.pre[0]|))
(assert (<= |tiny.h.pre[0]| (/ 281474976710657 281474976710656)))
(assert (<= (- (/ 281474976710657 281474976710656)) |tiny.h.pre[1]|))
(assert (<= |tiny.h.pre[1]| (/ 281474976710657 281474976710656)))
(declare-fun |tiny.h[0]| () Real)
(declare-fun |tiny.h[1]| () Real)
(assert (or (and (>= |tiny.h.pre[0]| 0.0) (= |tiny.h[0]| |tiny.h.pre[0]|)) (and (< |tiny.h.pre[0]| 0.0) (= |tiny.h[0]| 0.0))))
(assert (or (and (>= |tiny.h.pre[1]| 0.0) (= |tiny.h[1]| |tiny.h.pre[1]|)) (and (< |tiny.h.pre[1]| 0.0) (= |tiny.h[1]| 0.0))))
; layer y[1] = linear(W h + b)
(declare-fun |tiny.y.pre[0]| () Real)
(assert (= |tiny.y.pre[0]| (+ |tiny.h[0]| |tiny.h[1]| (- (/ 1 2)))))
(assert (<= (- (/ 4503599627370535 9007199254740992)) |tiny.y.pre[0]|))
(assert (<= |tiny.y.pre[0]| (/ 1688849860263949 1125899906842624)))
; property
(assert (> |tiny.y.pre[0]| (/ 1 2)))
(check-sat)
(get-value (|tiny.x[0]| |tiny.x[1]|))
